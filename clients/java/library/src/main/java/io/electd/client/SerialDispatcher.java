package io.electd.client;

import java.util.ArrayDeque;
import java.util.concurrent.Executor;

/**
 * Runs tasks one at a time, in the order given, on an executor (or at once on the calling
 * thread when there is none). Tasks must not throw.
 */
final class SerialDispatcher {
  private final Executor executor;
  private final ArrayDeque<Runnable> queue = new ArrayDeque<>();
  private boolean draining; // guarded by this
  private volatile Thread runner;

  SerialDispatcher(Executor executor) {
    this.executor = executor;
  }

  boolean inline() {
    return executor == null;
  }

  /**
   * Runs {@code task} after every task given before it.
   *
   * @throws java.util.concurrent.RejectedExecutionException if the executor refuses
   */
  void execute(Runnable task) {
    if (executor == null) {
      task.run();
      return;
    }
    boolean start;
    synchronized (this) {
      queue.add(task);
      start = !draining;
      draining = true;
    }
    if (start) {
      try {
        executor.execute(this::drain);
      } catch (RuntimeException e) {
        synchronized (this) {
          queue.clear();
          draining = false;
        }
        throw e;
      }
    }
  }

  /** True if the calling thread is running one of the tasks. */
  boolean onCurrentThread() {
    return runner == Thread.currentThread();
  }

  private void drain() {
    synchronized (this) {
      runner = Thread.currentThread();
    }
    while (true) {
      Runnable task;
      synchronized (this) {
        task = queue.poll();
        if (task == null) {
          runner = null;
          draining = false;
          return;
        }
      }
      try {
        task.run();
      } catch (RuntimeException | Error e) {
        // Tasks catch their own failures; never leave the queue stuck on one that did not.
      }
    }
  }
}
