{
  "targets": [
    {
      "target_name": "twinsec_native",
      "sources": [
        "native/addon.cc",
        "native/napi_engine.cc",
        "native/napi_args.cc",
        "native/engine.cc",
        "native/engine_tx.cc",
        "native/engine_rx.cc",
        "native/engine_iface.cc",
        "native/engine_tables.cc",
        "native/echo_track.cc",
        "native/fwd.cc",
        "native/gro.cc",
        "native/gso.cc",
        "native/sockets.cc",
        "native/tun.cc",
        "native/esp.cc",
        "native/replay.cc",
        "native/packet.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags": ["-Wall", "-Wextra", "-O2", "-pthread"],
      "cflags_cc": ["-Wall", "-Wextra", "-O2", "-std=c++17", "-pthread"],
      "ldflags": ["-pthread"]
    }
  ]
}
