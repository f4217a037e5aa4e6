// Entry of a worker thread running TypeScript: registers tsx in this thread (a thread does not
// inherit the parent's loader hooks), then loads the module named in workerData.entry.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.entry);
