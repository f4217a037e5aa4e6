/** The hub's typed errors: each names the repo, the revision and the endpoint or cache, and says what to do. */
import { RingtuneError } from '../errors.ts';

/** Base class: anything that went wrong getting a model from the hub or its cache. */
export class HubError extends RingtuneError {
  override readonly name: string = 'HubError';
}

/** 404 / RepositoryNotFound / RevisionNotFound. */
export class HubNotFoundError extends HubError {
  override readonly name: string = 'HubNotFoundError';
}

/** 401 / 403: gated or private without (or with the wrong) HF_TOKEN. */
export class HubAuthError extends HubError {
  override readonly name: string = 'HubAuthError';
}

/** The endpoint could not be reached, or a transfer kept failing. */
export class HubNetworkError extends HubError {
  override readonly name: string = 'HubNetworkError';
}

/** HF_HUB_OFFLINE=1 and the cache lacks the repo, the revision or one of the files. */
export class HubOfflineMissError extends HubError {
  override readonly name: string = 'HubOfflineMissError';
}

/** The repo has no weights ringtune loads (only .bin / .pt / .h5 / msgpack, or none at all). */
export class HubUnsupportedRepoError extends HubError {
  override readonly name: string = 'HubUnsupportedRepoError';
}

/** A downloaded file whose size or sha256 is not what the hub announced. */
export class HubIntegrityError extends HubError {
  override readonly name: string = 'HubIntegrityError';
}
