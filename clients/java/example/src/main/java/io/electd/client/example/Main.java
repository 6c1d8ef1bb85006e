package io.electd.client.example;

import io.electd.client.ElectdException;
import io.electd.client.ElectionClient;
import io.electd.client.LeaderListener;
import io.electd.client.LeaderWatch;
import io.electd.v1.GetLeaderResponse;
import io.electd.v1.Leader;
import io.electd.v1.ListNodesResponse;
import io.electd.v1.Node;
import java.io.PrintStream;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import sun.misc.Signal;

/**
 * The example program of clients/README.md: {@code leader}, {@code nodes} and {@code watch},
 * each taking one or more {@code HOST:PORT} addresses, with {@code --json} for one JSON object
 * per line.
 */
public final class Main {
  private static final String USAGE = String.join("\n",
      "usage: electd-client [--json] <command> ADDR [ADDR...]",
      "",
      "commands:",
      "  leader   print the current leader",
      "  nodes    print the live members, in election order (the leader first)",
      "  watch    print the leader each time it changes, until interrupted",
      "",
      "options:",
      "  --json                  print one JSON object per line",
      "  --tls-ca FILE           TLS: PEM file of the CAs that sign the nodes' certificates",
      "  --tls-cert FILE         TLS: PEM file of this client's certificate (mutual TLS)",
      "  --tls-key FILE          TLS: PEM file of its private key (with --tls-cert)",
      "  --tls-server-name NAME  TLS: the name the nodes' certificates must carry",
      "  -h, --help              print this help",
      "",
      "any --tls-* option turns TLS on; without them the client speaks plaintext.",
      "",
      "ADDR is the HOST:PORT of an electd node; any node answers for the cluster.",
      "exit status: 0 ok (watch: also on SIGINT/SIGTERM), 1 no node answered, 2 bad usage");

  private final PrintStream out;
  private final PrintStream err;
  private boolean json;
  private volatile LeaderWatch watch;
  private volatile boolean stopping;

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
    for (int i = 0; i < args.length; i++) {
      String arg = args[i];
      String name = arg.contains("=") ? arg.substring(0, arg.indexOf('=')) : arg;
      if (TLS_FLAGS.contains(name)) {
        if (arg.contains("=")) {
          tls.put(name, arg.substring(arg.indexOf('=') + 1));
        } else if (i + 1 < args.length) {
          tls.put(name, args[++i]);
        } else {
          return usage(name + " needs a value");
        }
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
    if (!List.of("leader", "nodes", "watch").contains(command)) {
      return usage("unknown command " + command);
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
          printLeader(client.getLeader());
          return 0;
        case "nodes":
          printNodes(client.listNodes());
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
    watch = client.watchLeader(0, new LeaderListener() {
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
