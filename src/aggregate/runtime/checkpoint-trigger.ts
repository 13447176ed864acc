import { Observable, type OperatorFunction, type SchedulerLike, asyncScheduler } from 'rxjs';

/**
 * Turns a stream of "n changes applied" into checkpoint signals: one when
 * `everyChanges` changes have accumulated since the last signal, or when
 * `everyMs` have passed since the first change not yet checkpointed. Nothing
 * is signalled while nothing changed. Completing the source signals what is
 * left, so a clean stop always ends with a checkpoint.
 *
 * @example
 * applied$.pipe(checkpointTrigger(5000, 5000), exhaustMap(() => saveCheckpoint()));
 */
export function checkpointTrigger(everyChanges: number, everyMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<number, number> {
  return (source) =>
    new Observable<number>((subscriber) => {
      let pending = 0;
      let timer: { unsubscribe(): void } | undefined;
      const fire = () => {
        timer?.unsubscribe();
        timer = undefined;
        const n = pending;
        pending = 0;
        if (n > 0) subscriber.next(n);
      };
      const subscription = source.subscribe({
        next: (n) => {
          if (n <= 0) return;
          pending += n;
          if (pending >= everyChanges) fire();
          else timer ??= scheduler.schedule(fire, everyMs);
        },
        error: (err) => subscriber.error(err),
        complete: () => {
          fire();
          subscriber.complete();
        },
      });
      return () => {
        timer?.unsubscribe();
        subscription.unsubscribe();
      };
    });
}
