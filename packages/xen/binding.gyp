# Targets (all built against the Xen headers in XEN_INCLUDE_DIR, default /usr/include):
#   vmsb_xen         the binding the daemon loads, linked against the real Xen libraries
#   libvmsbfakexen   a fake hypervisor: the subset of libxendevicemodel, libxenforeignmemory,
#                    libxenevtchn and libxenstore that vmsb_xen calls, compiled against the same
#                    headers (a signature change is a compile error), plus a hypervisor side that
#                    plays the guest; preloaded under vmsb_xen for end-to-end tests
#   vmsb_xen_fake    the same binding source linked against vmsbfakexen, for in-process tests
#   vmsb_fakexen_hv  test hooks for the hypervisor side of vmsbfakexen (guest RAM, vCPUs, xenstore)
{
  "variables": {
    "xen_include%": "<!(node -p \"process.env.XEN_INCLUDE_DIR || '/usr/include'\")"
  },
  "target_defaults": {
    "include_dirs": ["<(xen_include)"],
    "defines": ["__XEN_TOOLS__", "NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17"]
  },
  "targets": [
    {
      "target_name": "vmsb_xen",
      "sources": ["native/addon.cc", "native/server.cc", "native/system.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "libraries": ["-lxendevicemodel", "-lxenforeignmemory", "-lxenevtchn", "-lxenstore"]
    },
    {
      "target_name": "vmsbfakexen",
      "type": "shared_library",
      "product_prefix": "lib",
      "sources": ["fake/fakexen.c"],
      "cflags": ["-std=gnu11", "-fvisibility=default"],
      "libraries": ["-lpthread"]
    },
    {
      "target_name": "vmsb_xen_fake",
      "sources": ["native/addon.cc", "native/server.cc", "native/system.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["vmsbfakexen"]
    },
    {
      "target_name": "vmsb_fakexen_hv",
      "sources": ["fake/hv_addon.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "dependencies": ["vmsbfakexen"]
    }
  ]
}
