package io.electd.client;

/**
 * The work a {@link Campaign} runs while its candidate leads: one call per term, on a thread of
 * its own. Act as leader only while {@link Term#isValid()}, and pass {@link Term#epoch()} (the
 * fencing token) to whatever the work writes to.
 *
 * <p>The campaign cancels the term (sets {@link Term#isCancelled()}, completes {@link
 * Term#cancelled()} and interrupts the thread) before the lease deadline passes, when the node
 * reports the term lost, when the stream breaks, and when the caller resigns. The work must then
 * stop acting as leader and return (throwing, for example {@link InterruptedException}, is fine
 * then): the node lets the next candidate lead once the campaign acknowledged, which it does
 * only after this method returned.
 *
 * <p>Returning on its own (without being cancelled) ends the campaign: the candidate resigns.
 * Throwing on its own ends it too, after resigning, and {@link Campaign#await()} rethrows the
 * error.
 */
@FunctionalInterface
public interface LeaderWork {
  /** Does the leader's work for one term; see the class comment for when to return. */
  void run(Term term) throws Exception;
}
