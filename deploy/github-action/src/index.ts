import { appendFile, readFile } from 'node:fs/promises';
import { runAction } from './action.js';

/** The bundle's entry (action.yml runs it as both main and post). */
process.exitCode = await runAction({
  env: process.env,
  write: (text) => void process.stdout.write(text),
  appendFile: (path, text) => appendFile(path, text, 'utf8'),
  readFile: (path) => readFile(path, 'utf8'),
});
