/**
 * Gradient clipping by global L2 norm (Pascanu et al. 2013; torch.nn.utils.clip_grad_norm_):
 *   norm = sqrt(sum g^2);  if norm > maxNorm: g *= maxNorm / (norm + 1e-6)
 * Returns the norm before clipping (what torch returns and what we report). maxNorm <= 0 disables.
 */
export function clipGlobalNorm(grads: Float32Array, maxNorm: number): number {
  let sq = 0;
  for (let i = 0; i < grads.length; i++) sq += grads[i] * grads[i];
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (let i = 0; i < grads.length; i++) grads[i] *= scale;
  }
  return norm;
}
