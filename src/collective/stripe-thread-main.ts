/**
 * Entry of a ring stripe thread (stripe-thread.ts has the protocol and the main-thread side): an
 * ordinary GrpcRing for stripe k of a striped link, driven by messages from the main thread.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { GrpcRing } from './grpc-ring.ts';
import { useNativeRingKernels } from './kernels.ts';
import { usePlacedCopies } from './ring-allreduce.ts';
import { fromWireError, toWireError, type FromStripe, type StripeCall, type StripeThreadData, type ToStripe } from './stripe-thread.ts';

const d = workerData as StripeThreadData;
const port = parentPort!;
const reply = (m: FromStripe) => port.postMessage(m);
useNativeRingKernels(d.nativeKernels);
usePlacedCopies(d.placedCopies);

async function main(): Promise<void> {
  let ring: GrpcRing;
  try {
    ring = await GrpcRing.create({ ...d.options, epoch: d.epoch, stripe: d.stripe, onBroken: (err) => reply({ broken: toWireError(err) }) });
  } catch (err) {
    reply({ startError: toWireError(err) });
    port.close();
    return;
  }

  const run = async (call: StripeCall): Promise<void> => {
    if ('connect' in call) return ring.connect(call.connect);
    if ('allReduce' in call) {
      const { buf, ...o } = call.allReduce;
      return ring.allReduce(buf, o);
    }
    if ('broadcast' in call) {
      const { buf, ...o } = call.broadcast;
      return ring.broadcast(buf, o);
    }
    await ring.close();
  };

  port.on('message', (m: ToStripe) => {
    if ('abort' in m) return ring.abortWith(fromWireError(m.abort));
    run(m.call).then(
      () => {
        reply({ id: m.id, ok: true });
        if ('close' in m.call) port.close();
      },
      (err: unknown) => reply({ id: m.id, error: toWireError(err) }),
    );
  });
  reply({ ready: ring.address });
}

await main();
