package io.electd.client;

import io.grpc.Status;
import java.util.List;

/**
 * A call to electd failed: either no node answered (every address was unreachable, too slow,
 * or answered {@code UNAVAILABLE}, {@code DEADLINE_EXCEEDED} or {@code RESOURCE_EXHAUSTED}),
 * or a node rejected the call with an error that trying another node would not fix (for
 * example {@code INVALID_ARGUMENT}), or the call was cancelled ({@code CANCELLED}: the client
 * was closed, the future cancelled, or the calling thread interrupted). The one exception
 * type that {@link ElectionClient} and {@link LeaderWatch} throw for a failed call; unchecked.
 */
public final class ElectdException extends RuntimeException {
  private static final long serialVersionUID = 1L;

  private final transient List<String> addresses;
  private final transient Status status;

  ElectdException(String message, List<String> addresses, Status status, Throwable cause) {
    super(message, cause);
    this.addresses = List.copyOf(addresses);
    this.status = status;
  }

  /**
   * The addresses concerned: all of them when no node answered, else the one address whose
   * node rejected the call.
   */
  public List<String> addresses() {
    return addresses;
  }

  /**
   * The gRPC status of the rejection, or the last one seen when no node answered; {@code null}
   * if there was none (for example a watch whose streams all ended without a word).
   */
  public Status status() {
    return status;
  }

  /** True if no node answered at all (as opposed to a node rejecting the call). */
  public boolean noNodeAnswered() {
    return status == null || ElectionClient.isFailoverCode(status.getCode());
  }
}
