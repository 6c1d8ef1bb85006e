package io.electd.client;

/** Checks {@code HOST:PORT} addresses up front, so a typo is a usage error, not a retry loop. */
public final class Addresses {
  private Addresses() {}

  /**
   * Throws {@link IllegalArgumentException} unless {@code address} is {@code HOST:PORT} with a
   * port from 1 to 65535; an IPv6 host goes in brackets, as in {@code [::1]:7001}.
   */
  public static void check(String address) {
    int colon = address.lastIndexOf(':');
    String host = colon > 0 ? address.substring(0, colon) : "";
    String port = colon > 0 ? address.substring(colon + 1) : "";
    if (host.contains(":") && !(host.startsWith("[") && host.endsWith("]"))) {
      host = "";
    }
    boolean ok = !host.isEmpty() && !host.equals("[]") && port.matches("[0-9]{1,5}")
        && Integer.parseInt(port) >= 1 && Integer.parseInt(port) <= 65535;
    if (!ok) {
      throw new IllegalArgumentException("bad address '" + address + "': want HOST:PORT");
    }
  }
}
