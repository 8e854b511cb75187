# Targets built whenever Node's headers are available (no Xen needed):
#   vmsb_host        the host binding: lockf() locks and the sandbox (chroot, ids, rlimits, seccomp
#                    through libseccomp when its headers are present); loaded by varstored and by the
#                    varstore tools, on any Linux host
#   vmsb-launch      the launcher that enters varstored's namespaces before Node starts (native/launch.c)
# Targets built against the Xen headers in XEN_INCLUDE_DIR (default /usr/include), when present:
#   vmsb_xen         the binding the daemon loads, linked against the real Xen libraries
#   libvmsbfakexen   a fake hypervisor: the subset of libxendevicemodel, libxenforeignmemory,
#                    libxenevtchn and libxenstore that vmsb_xen calls, compiled against the same
#                    headers (a signature change is a compile error), plus a hypervisor side that
#                    plays the guest; preloaded under vmsb_xen for end-to-end tests
#   vmsb_xen_fake    the same binding source linked against vmsbfakexen, for in-process tests
#   vmsb_fakexen_hv  test hooks for the hypervisor side of vmsbfakexen (guest RAM, vCPUs, xenstore)
# scripts/build-native.mjs sets VMSB_WITH_XEN and VMSB_WITH_SECCOMP (1 or 0) from what it finds.
{
  "variables": {
    "xen_include%": "<!(node -p \"process.env.XEN_INCLUDE_DIR || '/usr/include'\")",
    "with_xen%": "<!(node -p \"process.env.VMSB_WITH_XEN === '0' ? 0 : 1\")",
    "with_seccomp%": "<!(node -p \"process.env.VMSB_WITH_SECCOMP === '0' ? 0 : 1\")"
  },
  "target_defaults": {
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags": ["-Wall", "-Wextra", "-Wno-unused-parameter", "-fno-strict-aliasing"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
    "cflags_cc": ["-std=c++17"]
  },
  "targets": [
    {
      "target_name": "vmsb_host",
      "sources": ["native/host.cc", "native/sandbox.cc", "native/errors.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "conditions": [
        ["with_seccomp==1", { "defines": ["VMSB_HAVE_SECCOMP"], "libraries": ["-lseccomp"] }]
      ]
    },
    {
      "target_name": "vmsb-launch",
      "type": "executable",
      "sources": ["native/launch.c"],
      "cflags": ["-std=gnu11", "-O2"]
    }
  ],
  "conditions": [
    ["with_xen==1", {
      "targets": [
        {
          "target_name": "vmsb_xen",
          "sources": ["native/addon.cc", "native/server.cc", "native/system.cc", "native/errors.cc"],
          "include_dirs": ["<(xen_include)", "<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["__XEN_TOOLS__"],
          "libraries": ["-lxendevicemodel", "-lxenforeignmemory", "-lxenevtchn", "-lxenstore"]
        },
        {
          "target_name": "vmsbfakexen",
          "type": "shared_library",
          "product_prefix": "lib",
          "sources": ["fake/fakexen.c"],
          "include_dirs": ["<(xen_include)"],
          "defines": ["__XEN_TOOLS__"],
          "cflags": ["-std=gnu11", "-fvisibility=default"],
          "libraries": ["-lpthread"]
        },
        {
          "target_name": "vmsb_xen_fake",
          "sources": ["native/addon.cc", "native/server.cc", "native/system.cc", "native/errors.cc"],
          "include_dirs": ["<(xen_include)", "<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["__XEN_TOOLS__"],
          "dependencies": ["vmsbfakexen"]
        },
        {
          "target_name": "vmsb_fakexen_hv",
          "sources": ["fake/hv_addon.cc"],
          "include_dirs": ["<(xen_include)", "<!(node -p \"require('node-addon-api').include_dir\")"],
          "defines": ["__XEN_TOOLS__"],
          "dependencies": ["vmsbfakexen"]
        }
      ]
    }]
  ]
}
