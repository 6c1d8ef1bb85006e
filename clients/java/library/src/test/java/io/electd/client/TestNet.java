package io.electd.client;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;

/** Misbehaving TCP endpoints on 127.0.0.1 for the failover tests. */
final class TestNet {
  private TestNet() {}

  private static final InetAddress LOOPBACK = InetAddress.getLoopbackAddress();

  /** An address where nothing listens: connections are refused at once. */
  static String refusingAddress() throws IOException {
    try (ServerSocket socket = new ServerSocket(0, 1, LOOPBACK)) {
      return "127.0.0.1:" + socket.getLocalPort();
    }
  }

  /**
   * A listening socket that never accepts and whose accept queue is full, so that the kernel
   * drops further connection attempts (their SYNs) without a word: a black-holed address.
   */
  static final class BlackHole implements AutoCloseable {
    private final ServerSocket server;
    private final List<Socket> fillers = new CopyOnWriteArrayList<>();

    BlackHole() throws IOException {
      server = new ServerSocket(0, 1, LOOPBACK);
      for (int i = 0; i < 32; i++) {
        Socket s = new Socket();
        try {
          s.connect(server.getLocalSocketAddress(), 300);
          fillers.add(s);
        } catch (SocketTimeoutException e) {
          s.close();
          return; // the queue is full: from now on connection attempts hang
        }
      }
      close();
      throw new IllegalStateException("could not fill the accept queue of a listening socket");
    }

    String address() {
      return "127.0.0.1:" + server.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      for (Socket s : fillers) {
        s.close();
      }
      server.close();
    }
  }

  /**
   * A listening socket that completes TCP connections (the kernel does, into a large accept
   * queue) but never reads or writes a byte: a stuck process that speaks no HTTP/2.
   */
  static final class Silent implements AutoCloseable {
    private final ServerSocket server;

    Silent() throws IOException {
      server = new ServerSocket(0, 64, LOOPBACK);
    }

    String address() {
      return "127.0.0.1:" + server.getLocalPort();
    }

    @Override
    public void close() throws IOException {
      server.close();
    }
  }

  /**
   * A TCP proxy to a port on 127.0.0.1 that can freeze: once frozen it forwards nothing in
   * either direction but keeps every connection open, as a node stopped with SIGSTOP does
   * (its kernel still holds the connections; the process answers nothing, pings included).
   */
  static final class FreezableProxy implements AutoCloseable {
    private final ServerSocket server;
    private final int targetPort;
    private final List<Socket> sockets = new CopyOnWriteArrayList<>();
    private volatile boolean frozen;

    FreezableProxy(int targetPort) throws IOException {
      this.targetPort = targetPort;
      this.server = new ServerSocket(0, 64, LOOPBACK);
      Thread acceptor = new Thread(this::acceptLoop, "proxy-accept");
      acceptor.setDaemon(true);
      acceptor.start();
    }

    String address() {
      return "127.0.0.1:" + server.getLocalPort();
    }

    void freeze() {
      frozen = true;
    }

    private void acceptLoop() {
      try {
        while (true) {
          Socket client = server.accept();
          Socket upstream = new Socket();
          upstream.connect(new InetSocketAddress(LOOPBACK, targetPort));
          sockets.add(client);
          sockets.add(upstream);
          pump(client, upstream);
          pump(upstream, client);
        }
      } catch (IOException e) {
        // closed
      }
    }

    private void pump(Socket from, Socket to) {
      Thread t = new Thread(() -> {
        byte[] buf = new byte[16384];
        try {
          InputStream in = from.getInputStream();
          OutputStream out = to.getOutputStream();
          int n;
          while ((n = in.read(buf)) >= 0) {
            while (frozen) {
              Thread.sleep(20);
            }
            out.write(buf, 0, n);
            out.flush();
          }
          to.shutdownOutput();
        } catch (IOException | InterruptedException e) {
          // closed
        }
      }, "proxy-pump");
      t.setDaemon(true);
      t.start();
    }

    @Override
    public void close() throws IOException {
      server.close();
      for (Socket s : sockets) {
        s.close();
      }
    }
  }
}
