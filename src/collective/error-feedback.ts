/**
 * Error feedback for the fp16 all-reduce (Seide et al. 2014, "1-bit SGD"; Karimireddy et al. 2019,
 * "Error feedback fixes SignSGD"): what the codec rounded away this step is added to the next step's
 * gradient, so nothing is lost over the run, only delayed by a step.
 *
 * Which errors. In a ring every rounding of a value happens on exactly one rank: in reduce-scatter
 * rank r encodes the partial sum of each chunk it sends (its own gradient plus what came from the
 * left), and the owner of a chunk rounds the full sum once before the all-gather (forwarding decoded
 * values in the all-gather rounds nothing). Each rank records, at the positions it encoded, the error
 * it introduced (fp16.ts, via a residual sink) — not only the error of its own contribution — so the
 * residuals of all ranks add up to (result - exact sum) of the step, up to the float32 adds:
 *   step t:  g'_r = g_r + res_r(t-1);  result_t = sum_r g'_r - sum_r res_r(t)
 *   =>  sum_{t<=T} result_t = sum_{t<=T} sum_r g_r(t) - sum_r res_r(T)
 * The applied sum telescopes to the true sum minus the last residuals, which stay bounded by one
 * step's rounding (rel_N * S + abs_N * max S, fp16SumErrorBound) instead of growing with T.
 *
 * State. The residual is per process and per ring: a re-formed ring or a resumed run starts from zero
 * (it is not in checkpoints; each rank's residual differs and checkpoints hold what all ranks share),
 * so a resumed fp16 run is not bit-identical to an uninterrupted one. fp32 and bf16 runs stay so.
 */
import { addFp16ResidualSink } from './fp16.ts';

export class ErrorFeedback {
  private residual: Float32Array | null = null;

  /**
   * @param fedBack how many leading elements of the reduced buffer are fed back: the gradient; values
   *   after it (the step's loss sum, token count and stop votes) are set afresh each step rather than
   *   accumulated, so any error of theirs is dropped. The worker sends them as the all-reduce's exact
   *   tail (fp32 messages, ring-allreduce.ts), which round nothing and so record no residual at all.
   */
  constructor(private readonly fedBack: number) {}

  /**
   * Runs one all-reduce of `buffer` with error feedback: adds the residual to the first `fedBack`
   * values, records this rank's rounding errors during `reduce`, keeps them for the next call. If
   * `reduce` fails the residual is dropped (the ring is re-formed from shared state anyway).
   */
  async around(buffer: Float32Array, reduce: () => Promise<void>): Promise<void> {
    if (buffer.length < this.fedBack) throw new RangeError(`buffer of ${buffer.length} values, ${this.fedBack} fed back`);
    const residual = this.residual?.length === buffer.length ? this.residual : new Float32Array(buffer.length);
    this.residual = null;
    for (let i = 0; i < this.fedBack; i++) buffer[i] = buffer[i]! + residual[i]!;
    residual.fill(0);
    const remove = addFp16ResidualSink({ buffer, residual });
    try {
      await reduce();
    } finally {
      remove();
    }
    residual.fill(0, this.fedBack);
    this.residual = residual;
  }

  /** The current residual (zeros before the first step), for tests and diagnostics. */
  current(): Float32Array | null {
    return this.residual;
  }

  /** Forget the residual (a re-formed ring starts from zero). */
  reset(): void {
    this.residual = null;
  }
}
