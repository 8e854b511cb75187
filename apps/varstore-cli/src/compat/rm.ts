import { runAsProcess } from './lib/io.js';
import { varstoreRm } from './lib/rm.js';

runAsProcess(varstoreRm);
