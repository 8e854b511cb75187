import { runAsProcess } from './lib/io.js';
import { varstoreSet } from './lib/set.js';

runAsProcess(varstoreSet);
