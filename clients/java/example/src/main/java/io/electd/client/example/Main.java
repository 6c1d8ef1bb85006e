package io.electd.client.example;

import io.electd.client.Campaign;
import io.electd.client.CampaignListener;
import io.electd.client.CampaignOptions;
import io.electd.client.ElectdException;
import io.electd.client.ElectionClient;
import io.electd.client.LeaderListener;
import io.electd.client.LeaderWatch;
import io.electd.client.Loss;
import io.electd.client.Term;
import io.electd.v1.ElectionSummary;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.ListElectionsResponse;
import io.electd.v1.ListNodesResponse;
import io.electd.v1.Node;
import io.electd.v1.ResignResponse;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import sun.misc.Signal;

/**
 * The example program of clients/README.md: {@code leader}, {@code nodes} and {@code watch}
 * (with {@code --election NAME} for a named election), {@code campaign}, {@code resign} and
 * {@code elections}, each taking one or more {@code HOST:PORT} addresses, with {@code --json}
 * for one JSON object per line.
 */
public final class Main {
  private static final String USAGE = String.join("\n",
      "usage: electd-client [--json] <command> [ARGS] ADDR [ADDR...]",
      "",
      "commands:",
      "  leader ADDR...                 print the current leader",
      "  nodes ADDR...                  print the live members, in election order (the leader first)",
      "  watch ADDR...                  print the leader each time it changes, until interrupted",
      "  campaign ELECTION ID ADDR...   campaign as candidate ID in a named election until",
      "                                 interrupted (then resign); prints queued position=P,",
      "                                 leading epoch=E, lost epoch=E reason=R, stopped",
      "  resign ELECTION EPOCH ADDR...  end the term EPOCH of a named election",
      "  elections ADDR...              list the named elections",
      "",
      "options:",
      "  --json                  print one JSON object per line",
      "  --election NAME         leader, nodes, watch: a named election (default: the nodes')",
      "  --value V               campaign: what the candidate says about itself",
      "  --priority N            campaign: higher leads first (default 0)",
      "  --label KEY=VALUE       campaign: a label (repeatable)",
      "  --never-lead            campaign: a member only, never leads",
      "  --stop-on-loss          campaign: end after the first lost term (default: campaign again)",
      "  --tls-ca FILE           TLS: PEM file of the CAs that sign the nodes' certificates",
      "  --tls-cert FILE         TLS: PEM file of this client's certificate (mutual TLS)",
      "  --tls-key FILE          TLS: PEM file of its private key (with --tls-cert)",
      "  --tls-server-name NAME  TLS: the name the nodes' certificates must carry",
      "  -h, --help              print this help",
      "",
      "any --tls-* option turns TLS on; without them the client speaks plaintext.",
      "",
      "ADDR is the HOST:PORT of an electd node; any node answers for the cluster.",
      "campaign: while leading, appends 'EPOCH ID' lines every 100 ms to $ELECTD_CAMPAIGN_LOG if set.",
      "exit status: 0 ok (watch: also on SIGINT/SIGTERM), 1 no node answered, 2 bad usage");

  private final PrintStream out;
  private final PrintStream err;
  private boolean json;
  private volatile LeaderWatch watch;
  private volatile Campaign campaign;
  private volatile boolean stopping;
  private String election = "";
  private String value = "";
  private int priority;
  private boolean neverLead;
  private boolean stopOnLoss;
  private final Map<String, String> labels = new LinkedHashMap<>();

  Main(PrintStream out, PrintStream err) {
    this.out = out;
    this.err = err;
  }

  public static void main(String[] args) {
    System.exit(new Main(System.out, System.err).run(args));
  }

  /** Runs one command and returns the exit status. */
  int run(String[] args) {
    String command = null;
    List<String> addresses = new ArrayList<>();
    Map<String, String> tls = new LinkedHashMap<>();
    Map<String, String> opts = new LinkedHashMap<>();
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      String name = arg.contains("=") ? arg.substring(0, arg.indexOf('=')) : arg;
      if (TLS_FLAGS.contains(name) || VALUE_FLAGS.contains(name)) {
        String v;
        if (arg.contains("=")) {
          v = arg.substring(arg.indexOf('=') + 1);
        } else if (i + 1 < args.length) {
          v = args[++i];
        } else {
          return usage(name + " needs a value");
        }
        if (TLS_FLAGS.contains(name)) {
          tls.put(name, v);
        } else if (name.equals("--label")) {
          int eq = v.indexOf('=');
          if (eq <= 0) {
            return usage("--label wants KEY=VALUE, not " + v);
          }
          labels.put(v.substring(0, eq), v.substring(eq + 1));
        } else {
          opts.put(name, v);
        }
      } else if (arg.equals("--stop-on-loss")) {
        stopOnLoss = true;
      } else if (arg.equals("--never-lead")) {
        neverLead = true;
      } else if (arg.equals("--json")) {
        json = true;
      } else if (arg.equals("-h") || arg.equals("--help")) {
        out.println(USAGE);
        return 0;
      } else if (arg.startsWith("-")) {
        return usage("unknown option " + arg);
      } else if (command == null) {
        command = arg;
      } else {
        addresses.add(arg);
      }
    }
    if (command == null) {
      return usage("missing command");
    }
    if (!COMMANDS.contains(command)) {
      return usage("unknown command " + command);
    }
    election = opts.getOrDefault("--election", "");
    value = opts.getOrDefault("--value", "");
    String candidate = null;
    long epoch = 0;
    if (command.equals("campaign") || command.equals("resign")) {
      if (addresses.size() < 2) {
        return usage(command + (command.equals("campaign") ? " needs ELECTION ID ADDR..." : " needs ELECTION EPOCH ADDR..."));
      }
      election = addresses.remove(0);
      String second = addresses.remove(0);
      if (command.equals("campaign")) {
        candidate = second;
      } else {
        try {
          epoch = Long.parseLong(second);
        } catch (NumberFormatException e) {
          return usage("EPOCH must be a number, not " + second);
        }
      }
    }
    if (opts.containsKey("--priority")) {
      try {
        priority = Integer.parseInt(opts.get("--priority"));
      } catch (NumberFormatException e) {
        return usage("--priority must be a number, not " + opts.get("--priority"));
      }
    }
    CampaignOptions campaignOptions = null;
    if (command.equals("campaign")) {
      try {
        campaignOptions = campaignOptions(candidate);
      } catch (IllegalArgumentException e) {
        return usage(e.getMessage());
      }
    }
    if (addresses.isEmpty()) {
      return usage(command + " needs at least one address");
    }
    try {
      addresses.forEach(ElectionClient::validateAddress);
    } catch (IllegalArgumentException e) {
      return usage(e.getMessage());
    }

    ElectionClient built;
    try {
      built = ElectionClient.newBuilder()
          .addresses(addresses)
          .tlsCa(path(tls.get("--tls-ca")))
          .tlsCert(path(tls.get("--tls-cert")))
          .tlsKey(path(tls.get("--tls-key")))
          .tlsServerName(tls.get("--tls-server-name"))
          .build();
    } catch (ElectdException e) { // the TLS options are wrong: bad usage
      return usage(e.getMessage());
    }
    try (ElectionClient client = built) {
      switch (command) {
        case "leader":
          printLeader(client.getLeader(election));
          return 0;
        case "nodes":
          printNodes(client.listNodes(election, Map.of()));
          return 0;
        case "campaign":
          return campaign(client, campaignOptions);
        case "resign":
          printResigned(client.resign(election, epoch));
          return 0;
        case "elections":
          printElections(client.listElections());
          return 0;
        default:
          return watch(client);
      }
    } catch (ElectdException e) {
      err.println("electd-client: " + e.getMessage());
      return 1;
    } catch (InterruptedException e) {
      return 0;
    }
  }

  private static final List<String> TLS_FLAGS =
      List.of("--tls-ca", "--tls-cert", "--tls-key", "--tls-server-name");
  private static final List<String> VALUE_FLAGS =
      List.of("--election", "--value", "--priority", "--label");
  private static final List<String> COMMANDS =
      List.of("leader", "nodes", "watch", "campaign", "resign", "elections");

  private static Path path(String value) {
    return value == null || value.isEmpty() ? null : Path.of(value);
  }

  private int usage(String problem) {
    err.println("electd-client: " + problem);
    err.println(USAGE.lines().findFirst().orElseThrow() + "  (--help for more)");
    return 2;
  }

  private void printLeader(GetLeaderResponse response) {
    Leader leader = response.getLeader();
    Node node = leader.getNode();
    if (json) {
      line(leaderJson(leader));
    } else {
      line(String.format("leader %s at %s, epoch %d (answered by %s)",
          node.getId(), node.getAddress(), leader.getEpoch(), response.getResponderId()));
    }
  }

  private void printNodes(ListNodesResponse response) {
    if (json) {
      for (Node node : response.getNodesList()) {
        line("{\"id\":" + quote(node.getId())
            + ",\"address\":" + quote(node.getAddress())
            + ",\"sequence\":" + node.getSequence()
            + ",\"is_leader\":" + node.getIsLeader()
            + ",\"watches\":" + quote(node.getWatches()) + "}");
      }
      return;
    }
    String format = "%-12s %-22s %10s  %-6s  %s";
    line(String.format(format, "ID", "ADDRESS", "SEQUENCE", "LEADER", "WATCHES"));
    for (Node node : response.getNodesList()) {
      line(String.format(format, node.getId(), node.getAddress(), node.getSequence(),
          node.getIsLeader() ? "yes" : "", node.getWatches()).stripTrailing());
    }
    line(String.format("epoch %d (answered by %s)", response.getEpoch(), response.getResponderId()));
  }

  private int watch(ElectionClient client) throws InterruptedException {
    // The JVM's default for SIGINT/SIGTERM is to exit 130/143 from shutdown hooks; the
    // contract wants exit 0 within a second, so handle the signals ourselves (sun.misc.Signal,
    // in the jdk.unsupported module, is the only JDK API for that) and end the watch at once,
    // even in the middle of a backoff or a connection attempt. Installed before the watch
    // starts, so that an early signal is not lost.
    Signal.handle(new Signal("INT"), s -> stop());
    Signal.handle(new Signal("TERM"), s -> stop());
    watch = client.watchLeader(election, 0, new LeaderListener() {
      @Override
      public void onLeader(Leader leader) {
        if (json) {
          line(leaderJson(leader));
        } else {
          line(String.format("%s leader %s at %s, epoch %d", Instant.now(),
              leader.getNode().getId(), leader.getNode().getAddress(), leader.getEpoch()));
        }
      }

      @Override
      public void onFailover(String address, String reason) {
        if (!json) {
          err.println("electd-client: leaving " + address + ": " + reason);
        }
      }
    });
    if (stopping) {
      watch.close();
    }
    watch.await(); // returns when closed; throws ElectdException if no node answered
    return 0;
  }

  private void stop() {
    stopping = true;
    LeaderWatch w = watch;
    if (w != null) {
      w.close();
    }
    Campaign c = campaign;
    if (c != null) {
      c.resign(); // cancels the work, waits for it, resigns; then campaign() returns
    }
  }

  private CampaignOptions campaignOptions(String candidate) {
    return CampaignOptions.newBuilder(election, candidate)
        .value(value)
        .priority(priority)
        .labels(labels)
        .neverLead(neverLead)
        .onLoss(stopOnLoss ? CampaignOptions.OnLoss.STOP : CampaignOptions.OnLoss.RECAMPAIGN)
        .listener(new CampaignListener() {
          @Override
          public void onQueued(int position, String waitingFor, boolean never) {
            line("queued position=" + position);
          }

          @Override
          public void onLeading(long e) {
            line("leading epoch=" + e);
          }

          @Override
          public void onLost(long e, Loss reason, String detail) {
            line("lost epoch=" + e + " reason=" + reason.label());
          }

          @Override
          public void onFailover(String address, String reason) {
            err.println("electd-client: leaving " + address + ": " + reason);
          }

          @Override
          public void onRefused(String request, String reason) {
            err.println("electd-client: the node refused " + request + ": " + reason);
          }
        })
        .build();
  }

  /**
   * Campaigns until SIGINT/SIGTERM (then resigns) or, with --stop-on-loss, the first loss. The
   * work appends "EPOCH ID" to $ELECTD_CAMPAIGN_LOG every 100 ms while the term is valid.
   */
  private int campaign(ElectionClient client, CampaignOptions options) throws InterruptedException {
    String logName = System.getenv("ELECTD_CAMPAIGN_LOG");
    Path log = logName == null || logName.isEmpty() ? null : Path.of(logName);
    String id = options.candidateId();
    Signal.handle(new Signal("INT"), s -> stop());
    Signal.handle(new Signal("TERM"), s -> stop());
    campaign = client.campaign(options, term -> lead(term, log, id));
    if (stopping) {
      campaign.resign();
    }
    try {
      campaign.await();
    } catch (java.util.concurrent.CompletionException e) { // the work failed (the log file)
      line("stopped");
      err.println("electd-client: the leader's work failed: " + e.getCause());
      return 1;
    } catch (ElectdException e) {
      line("stopped");
      throw e;
    }
    line("stopped");
    return 0;
  }

  /** The work of one term: a line every 100 ms while the term is valid, until cancelled. */
  private static void lead(Term term, Path log, String id) throws InterruptedException, IOException {
    byte[] entry = (term.epoch() + " " + id + "\n").getBytes(StandardCharsets.UTF_8);
    while (!term.isCancelled()) {
      if (log != null && term.isValid()) {
        Files.write(log, entry, StandardOpenOption.CREATE, StandardOpenOption.APPEND);
      }
      Thread.sleep(100);
    }
  }

  private void printResigned(ResignResponse response) {
    Leader leader = response.getLeader();
    if (json) {
      line("{\"election\":" + quote(election) + ",\"id\":" + quote(leader.getNode().getId())
          + ",\"epoch\":" + leader.getEpoch() + "}");
    } else {
      line(String.format("resigned %s: term %d of %s ended (answered by %s)", election,
          leader.getEpoch(), leader.getNode().getId(), response.getResponderId()));
    }
  }

  private void printElections(ListElectionsResponse response) {
    if (json) {
      for (ElectionSummary e : response.getElectionsList()) {
        line("{\"name\":" + quote(e.getName()) + ",\"candidates\":" + e.getCandidates() + "}");
      }
      return;
    }
    String format = "%-32s %10s";
    line(String.format(format, "ELECTION", "CANDIDATES"));
    for (ElectionSummary e : response.getElectionsList()) {
      line(String.format(format, e.getName(), e.getCandidates()));
    }
  }

  private static String leaderJson(Leader leader) {
    return "{\"id\":" + quote(leader.getNode().getId())
        + ",\"address\":" + quote(leader.getNode().getAddress())
        + ",\"epoch\":" + leader.getEpoch() + "}";
  }

  private void line(String s) {
    out.println(s);
    out.flush(); // one line per event, visible at once even through a pipe
    if (out.checkError() && watch != null) {
      watch.close(); // stdout is gone (say, `watch | head -1`): nobody is listening any more
    }
  }

  /** A JSON string literal (RFC 8259), without pulling in a JSON library for three fields. */
  static String quote(String s) {
    StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"': sb.append("\\\""); break;
        case '\\': sb.append("\\\\"); break;
        case '\n': sb.append("\\n"); break;
        case '\r': sb.append("\\r"); break;
        case '\t': sb.append("\\t"); break;
        default:
          if (c < 0x20) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
      }
    }
    return sb.append('"').toString();
  }
}
