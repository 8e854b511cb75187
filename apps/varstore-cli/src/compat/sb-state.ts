import { runAsProcess } from './lib/io.js';
import { varstoreSbState } from './lib/sb-state.js';

runAsProcess(varstoreSbState);
