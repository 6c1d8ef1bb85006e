package io.electd.client;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Objects;
import java.util.regex.Pattern;

/**
 * What a {@link Campaign} asks for: the election, the candidate, what it says about itself, and
 * how the client behaves. Immutable; build with {@link #newBuilder(String, String)}.
 *
 * <pre>{@code
 * CampaignOptions options = CampaignOptions.newBuilder("billing-cron", "host-a")
 *     .value("10.0.0.5:8080")
 *     .priority(10)
 *     .onLoss(CampaignOptions.OnLoss.STOP)
 *     .build();
 * }</pre>
 */
public final class CampaignOptions {
  /** The default interval between pings (never more than a third of the last lease). */
  public static final Duration DEFAULT_PING_INTERVAL = Duration.ofMillis(500);
  /** The smallest safety margin before the lease deadline (else 10 % of the lease). */
  public static final Duration DEFAULT_MIN_SAFETY_MARGIN = Duration.ofMillis(50);
  /** The largest value a candidate may carry (CampaignStart.value, CampaignProclaim.value). */
  public static final int MAX_VALUE_BYTES = 16 * 1024;

  private static final Pattern ELECTION = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._-]{0,127}");
  private static final Pattern CANDIDATE = Pattern.compile("[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}");

  /** What the campaign does when a term is lost (the node's Lost, an expired lease, a broken stream). */
  public enum OnLoss {
    /** Stay a candidate (re-opening the stream if needed) and lead again when elected (default). */
    RECAMPAIGN,
    /** End the campaign: {@link Campaign#await()} returns. */
    STOP
  }

  private final String election;
  private final String candidateId;
  private final byte[] value;
  private final Map<String, String> labels;
  private final int priority;
  private final boolean neverLead;
  private final OnLoss onLoss;
  private final Duration pingInterval;
  private final Duration minSafetyMargin;
  private final CampaignListener listener;

  private CampaignOptions(Builder b) {
    this.election = b.election;
    this.candidateId = b.candidateId;
    this.value = b.value.clone();
    this.labels = Map.copyOf(b.labels);
    this.priority = b.priority;
    this.neverLead = b.neverLead;
    this.onLoss = b.onLoss;
    this.pingInterval = b.pingInterval;
    this.minSafetyMargin = b.minSafetyMargin;
    this.listener = b.listener;
  }

  /**
   * A builder for a candidate {@code candidateId} in the named election {@code election}.
   *
   * @throws IllegalArgumentException if the election name (1-128 letters, digits, '.', '_' or
   *     '-', starting with a letter or digit) or the candidate id (the same, '@' and ':' too)
   *     is malformed
   */
  public static Builder newBuilder(String election, String candidateId) {
    return new Builder(checkElection(election), checkCandidate(candidateId));
  }

  static String checkElection(String election) {
    Objects.requireNonNull(election, "election");
    if (!ELECTION.matcher(election).matches()) {
      throw new IllegalArgumentException("bad election name '" + election + "': want 1-128 letters, "
          + "digits, '.', '_' or '-', starting with a letter or digit");
    }
    return election;
  }

  private static String checkCandidate(String id) {
    Objects.requireNonNull(id, "candidateId");
    if (!CANDIDATE.matcher(id).matches()) {
      throw new IllegalArgumentException("bad candidate id '" + id + "': want 1-128 letters, "
          + "digits, '.', '_', ':', '@' or '-', starting with a letter or digit");
    }
    return id;
  }

  static byte[] checkValue(byte[] value) {
    Objects.requireNonNull(value, "value");
    if (value.length > MAX_VALUE_BYTES) {
      throw new IllegalArgumentException("value too large: " + value.length + " bytes (at most "
          + MAX_VALUE_BYTES + ")");
    }
    return value;
  }

  public String election() {
    return election;
  }

  public String candidateId() {
    return candidateId;
  }

  /** A copy of the initial value. */
  public byte[] value() {
    return value.clone();
  }

  public Map<String, String> labels() {
    return labels;
  }

  public int priority() {
    return priority;
  }

  public boolean neverLead() {
    return neverLead;
  }

  public OnLoss onLoss() {
    return onLoss;
  }

  public Duration pingInterval() {
    return pingInterval;
  }

  public Duration minSafetyMargin() {
    return minSafetyMargin;
  }

  /** The listener, never null (a no-op one when none was given). */
  public CampaignListener listener() {
    return listener;
  }

  /** Builds {@link CampaignOptions}. */
  public static final class Builder {
    private final String election;
    private final String candidateId;
    private byte[] value = new byte[0];
    private final Map<String, String> labels = new LinkedHashMap<>();
    private int priority;
    private boolean neverLead;
    private OnLoss onLoss = OnLoss.RECAMPAIGN;
    private Duration pingInterval = DEFAULT_PING_INTERVAL;
    private Duration minSafetyMargin = DEFAULT_MIN_SAFETY_MARGIN;
    private CampaignListener listener = new CampaignListener() {};

    private Builder(String election, String candidateId) {
      this.election = election;
      this.candidateId = candidateId;
    }

    /** What the candidate says about itself (opaque, at most 16 KiB), shown as {@code Node.value}. */
    public Builder value(byte[] value) {
      this.value = checkValue(value).clone();
      return this;
    }

    /** {@link #value(byte[])} of the UTF-8 bytes of {@code value}. */
    public Builder value(String value) {
      return value(value.getBytes(StandardCharsets.UTF_8));
    }

    /** Adds the labels (KEY=VALUE pairs shown as {@code Node.labels}; the node checks them). */
    public Builder labels(Map<String, String> labels) {
      this.labels.putAll(labels);
      return this;
    }

    /** Adds one label. */
    public Builder label(String key, String value) {
      this.labels.put(Objects.requireNonNull(key, "key"), Objects.requireNonNull(value, "value"));
      return this;
    }

    /** Higher leads first: a waiting candidate of higher priority preempts the leader (default 0). */
    public Builder priority(int priority) {
      this.priority = priority;
      return this;
    }

    /** A member only: listed, but never leads and never holds anyone back (default false). */
    public Builder neverLead(boolean neverLead) {
      this.neverLead = neverLead;
      return this;
    }

    /** What to do when a term is lost (default {@link OnLoss#RECAMPAIGN}). */
    public Builder onLoss(OnLoss onLoss) {
      this.onLoss = Objects.requireNonNull(onLoss, "onLoss");
      return this;
    }

    /**
     * How often to ping (default 500 ms); while leading never less often than a third of the
     * last lease granted.
     */
    public Builder pingInterval(Duration pingInterval) {
      if (pingInterval.isNegative() || pingInterval.isZero()) {
        throw new IllegalArgumentException("pingInterval must be positive");
      }
      this.pingInterval = pingInterval;
      return this;
    }

    /**
     * The smallest safety margin before the lease deadline at which the work is cancelled
     * (default 50 ms; the margin is 10 % of the lease when that is more).
     */
    public Builder minSafetyMargin(Duration margin) {
      if (margin.isNegative()) {
        throw new IllegalArgumentException("minSafetyMargin must not be negative");
      }
      this.minSafetyMargin = margin;
      return this;
    }

    /** Where the campaign's events go (default: nowhere). */
    public Builder listener(CampaignListener listener) {
      this.listener = Objects.requireNonNull(listener, "listener");
      return this;
    }

    public CampaignOptions build() {
      return new CampaignOptions(this);
    }
  }
}
