import { runAsProcess } from './lib/io.js';
import { varstoreGet } from './lib/get.js';

runAsProcess(varstoreGet);
