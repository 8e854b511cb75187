import { runAsProcess } from './lib/io.js';
import { varstoreLs } from './lib/ls.js';

runAsProcess(varstoreLs);
