import { runProgram } from './run.js';

runProgram(process.argv.slice(2));
