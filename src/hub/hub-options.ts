/**
 * The hub settings, read from the environment once (by the CLI) and passed down compiled: nothing
 * below re-reads process.env. Variable names and defaults are huggingface_hub's, so a machine set
 * up for Python tools works unchanged:
 *   HF_HUB_CACHE (else HUGGINGFACE_HUB_CACHE, else $HF_HOME/hub, HF_HOME default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)
 *   HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (else the file $HF_HOME/token that `huggingface-cli login` writes)
 *   HF_HUB_OFFLINE=1 (cache only)
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export type ProgressStyle = 'bar' | 'lines' | 'none';

export interface HubOptions {
  /** Base URL of the hub or a mirror, without a trailing slash. */
  endpoint: string;
  /** Sent as `Authorization: Bearer <token>` on every hub request. */
  token?: string;
  /** The `hub` cache directory shared with huggingface_hub (models--org--name/ inside). */
  cacheDir: string;
  offline: boolean;
  /** 'bar' on a TTY, 'lines' otherwise; written to `log`. */
  progress: ProgressStyle;
  /** Where progress and notices go (stderr in the CLI). */
  log: (text: string) => void;
  /** Retries of one file transfer (each resumes where the last one stopped). */
  maxAttempts: number;
  /** Delay before a retry; tests set it to 0. */
  retryDelayMs: number;
}

const TRUE = new Set(['1', 'true', 'yes', 'on']);

export function hubOptionsFromEnv(env: NodeJS.ProcessEnv = process.env, stderr: { isTTY?: boolean; write(s: string): unknown } = process.stderr): HubOptions {
  const hfHome = env.HF_HOME || join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'huggingface');
  let token = env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined;
  if (!token) {
    try {
      token = readFileSync(env.HF_TOKEN_PATH || join(hfHome, 'token'), 'utf8').trim() || undefined;
    } catch {
      // no saved login: anonymous
    }
  }
  return {
    endpoint: (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, ''),
    token,
    cacheDir: resolve(env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome, 'hub')),
    offline: TRUE.has((env.HF_HUB_OFFLINE ?? '').toLowerCase()),
    progress: stderr.isTTY ? 'bar' : 'lines',
    log: (text) => stderr.write(text),
    maxAttempts: 5,
    retryDelayMs: 1000,
  };
}
