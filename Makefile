# virtus build. Plain GNU make: no generator step, one file, parallel-safe, and every
# new .c file under src/ is picked up by wildcard so adding a device never touches this file.
#
#   make            release build into build/
#   make SAN=1      ASan+UBSan build into build-asan/
#   make check      the whole test suite (what CI runs)
#   make install    programs, man pages, bash completion and the default guest under $(DESTDIR)$(PREFIX)

CC      ?= cc
SAN     ?= 0
ifeq ($(SAN),1)
  B       ?= build-asan
  SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
  B       ?= build
  SANFLAGS :=
endif

PKGS     := json-c libseccomp liburing zlib
# The image store and containers (virtus run, build, image): tar and compression, sha256, nftables.
# libarchive and libnftables are not linked: image/archive_api.c dlopen()s libarchive on the first archive
# call, container/net_nft.c libnftables when a bridge or a port needs rules (their -dev packages give the
# headers). Linked, they and theirs (libxml2, ICU, libstdc++, libjansson...) cost every store command -- virtus
# run too -- ~10 ms of start-up on this kind of host.
CTR_PKGS := nettle
CTR_CFLAGS := $(shell pkg-config --cflags $(CTR_PKGS) libarchive libnftables 2>/dev/null)
CTR_LIBS   := $(shell pkg-config --libs $(CTR_PKGS) 2>/dev/null) -ldl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc -MMD -MP $(SANFLAGS) $(PKG_CFLAGS) $(CTR_CFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS  += -lpthread
# libslirp is not linked: src/net/slirp.c dlopen()s libslirp.so.0 (package libslirp0) for `--net user` only,
# so VMs without user networking do not pay for it and glib. libslirp-dev still provides its header.
# libmicrohttpd is not linked either: src/api/http_server.c dlopen()s libmicrohttpd.so.12 (libmicrohttpd12)
# when a VM's API server starts (it brings gnutls and eight more libraries); libmicrohttpd-dev gives the header.

# Sources: the VMM core library, the container runtime library, and the programs.
LIB_SRC  := $(wildcard src/lib/*.c)
VMM_SRC  := $(wildcard src/vmm/*.c src/vmm/boot/*.c src/vmm/state/*.c src/devices/*.c src/devices/virtio/*.c src/block/*.c src/net/*.c src/api/*.c)
RT_SRC   := $(filter-out src/runtime/main.c,$(wildcard src/runtime/*.c))
# (a VM-isolated container's VMM is a managed VM: isolation/vmbox.c cleans its directory, cli/vm_state.c)
CTR_SRC  := $(wildcard src/image/*.c src/container/*.c src/isolation/*.c) src/cli/vm_state.c
# The image, build and container commands (and the libraries only they need: libarchive, nettle,
# libnftables and theirs) live in a shared object that virtus dlopen()s on the first such command: linked into
# virtus itself, those libraries cost every `virtus vm run` ~15 ms of start-up on this kind of host.
# `virtus serve` (the browser console) is there too: it lists containers and images, and asks VMs' APIs.
STORE_CLI_SRC := src/cli/image.c src/cli/build.c src/cli/container.c src/cli/serve.c
SERVE_SRC := $(wildcard src/serve/*.c)
STORE_SRC := $(STORE_CLI_SRC) $(CTR_SRC) $(SERVE_SRC) $(RT_SRC) $(LIB_SRC) src/net/slirp.c src/net/net_opts.c \
	     src/api/http_client.c src/api/mhd.c
CLI_SRC  := $(filter-out $(STORE_CLI_SRC),$(wildcard src/cli/*.c))

obj = $(patsubst %.c,$(B)/%.o,$(1))
picobj = $(patsubst %.c,$(B)/pic/%.o,$(1))

LIBVIRTUS := $(B)/libvirtus.a
LIBRT     := $(B)/libvirtus-runtime.a
LIBCTR    := $(B)/libvirtus-container.a

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BIN  := $(patsubst tests/unit/%.c,$(B)/tests/unit/%,$(UNIT_SRC))
KVMT_SRC  := $(wildcard tests/kvm/test_*.c)
KVMT_BIN  := $(patsubst tests/kvm/%.c,$(B)/tests/kvm/%,$(KVMT_SRC))
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)

# Tiny guests for the KVM tests: freestanding, loaded as PVH ELF.
GUEST_SRC := $(wildcard tests/kvm/guests/*.S)
GUEST_ELF := $(patsubst tests/kvm/guests/%.S,$(B)/tests/kvm/guests/%.elf,$(GUEST_SRC))

PROGRAMS := $(B)/virtus
AGENT    := $(B)/virtus-agent
STORE_SO := $(B)/libvirtus-store.so
ifneq ($(wildcard src/runtime/main.c),)
  PROGRAMS += $(B)/virtus-runtime
endif

# make install: PREFIX (default /usr/local) and DESTDIR as usual. The default guest goes where virtus
# looks for it relative to its own binary (<bindir>/../lib/virtus/guest); GUEST names the directory to
# install it from (made by guest/build).
PREFIX      ?= /usr/local
DESTDIR     ?=
BINDIR      := $(PREFIX)/bin
MANDIR      := $(PREFIX)/share/man
BASHCOMPDIR := $(PREFIX)/share/bash-completion/completions
GUESTDIR    := $(PREFIX)/lib/virtus/guest
STOREDIR    := $(PREFIX)/lib/virtus
WEBDIR      := $(PREFIX)/share/virtus/web
GUEST       ?= build/guest

.PHONY: all check unit clean guests tests install uninstall
all: $(PROGRAMS) $(STORE_SO) $(AGENT) tests

tests: $(UNIT_BIN) $(KVMT_BIN) $(GUEST_ELF) $(B)/tests/agent/agent_driver $(B)/tests/nested/veth_netns

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(B)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@

$(LIBVIRTUS): $(call obj,$(LIB_SRC) $(VMM_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBRT): $(call obj,$(RT_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# An empty archive is fine: ar makes one with no members.
$(LIBCTR): $(call obj,$(CTR_SRC) $(SERVE_SRC))
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

# The VMM links only what it uses: every shared library costs start-up time (json-c, for the VM API, ~0.3 ms;
# zlib, for compressed qcow2 clusters, is as small).
$(B)/virtus: $(call obj,$(CLI_SRC)) $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ -luring -lseccomp -ljson-c -lz $(LDLIBS)

# -Bsymbolic: the object's own copies of lib/ and runtime/ code bind to themselves, never to the program's.
$(STORE_SO): $(call picobj,$(STORE_SRC))
	$(CC) $(LDFLAGS) -shared -Wl,--no-undefined -Wl,-Bsymbolic -o $@ $^ $(PKG_LIBS) $(CTR_LIBS) $(LDLIBS)

$(B)/virtus-runtime: $(call obj,src/runtime/main.c) $(LIBRT) $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(LDLIBS)

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(LIBCTR) $(LIBRT) $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CTR_LIBS) -lcmocka $(LDLIBS)

# (the live network test lists the kernel's rules with libnftables itself)
$(B)/tests/unit/test_cnet_live: LDLIBS += -lnftables
# (and the layer test makes and reads archives with libarchive itself)
$(B)/tests/unit/test_image_layer: LDLIBS += -larchive

$(B)/tests/agent/agent_driver: $(B)/tests/agent/agent_driver.o $(LIBCTR) $(LIBRT) $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CTR_LIBS) $(LDLIBS)

# (a helper the isolation suite ships into the nested bed: a podman-like network namespace)
$(B)/tests/nested/veth_netns: $(B)/tests/nested/veth_netns.o $(LIBCTR) $(LIBRT) $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CTR_LIBS) $(LDLIBS)

$(B)/tests/kvm/%: $(B)/tests/kvm/%.o $(LIBVIRTUS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) -lcmocka $(LDLIBS)

# The VM-isolation agent: static, PID 1 of a guest, so always plain flags (no sanitizer runtime in a static
# PID 1), its own objects under $(B)/agent/, libraries linked statically (without the socket URLs, whose
# name lookup a static glibc cannot do, nor the store loader: nothing to load in the guest).
AGENT_SRC    := $(wildcard guest/agent/*.c) src/isolation/agent_json.c $(RT_SRC) $(filter-out src/lib/sock_url.c src/lib/store_so.c,$(LIB_SRC))
AGENT_CFLAGS := -O2 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -Isrc -MMD -MP $(PKG_CFLAGS)
$(B)/agent/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(AGENT_CFLAGS) -c $< -o $@

$(B)/virtus-agent: $(patsubst %.c,$(B)/agent/%.o,$(AGENT_SRC))
	$(CC) -static -Wl,--wrap=getpwuid -o $@ $^ -ljson-c -lseccomp -lpthread

# Guests are built without sanitizers: they run inside the VM, not in this process.
$(B)/tests/kvm/guests/%.elf: tests/kvm/guests/%.S tests/kvm/guests/guest.ld tests/kvm/guests/pvh_note.h
	@mkdir -p $(dir $@)
	gcc -m32 -nostdlib -static -ffreestanding -fno-pic -no-pie -Wl,--build-id=none \
	    -Itests/kvm/guests -T tests/kvm/guests/guest.ld -o $@ $<

check: all
	tests/run

install: $(PROGRAMS) $(STORE_SO) $(AGENT)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	install -m 755 $(PROGRAMS) $(DESTDIR)$(BINDIR)/
	install -d $(DESTDIR)$(STOREDIR) && install -m 755 $(STORE_SO) $(AGENT) $(DESTDIR)$(STOREDIR)/
	install -m 644 docs/man/virtus.1 $(DESTDIR)$(MANDIR)/man1/virtus.1
	install -m 644 docs/man/virtus-runtime.8 $(DESTDIR)$(MANDIR)/man8/virtus-runtime.8
	install -m 644 completion/virtus.bash $(DESTDIR)$(BASHCOMPDIR)/virtus
	install -m 644 completion/virtus-runtime.bash $(DESTDIR)$(BASHCOMPDIR)/virtus-runtime
	scripts/web-vendor
	install -d $(DESTDIR)$(WEBDIR)/vendor
	install -m 644 web/index.html web/app.js web/style.css $(DESTDIR)$(WEBDIR)/
	install -m 644 web/vendor/* $(DESTDIR)$(WEBDIR)/vendor/
	@if [ -r "$(GUEST)/initramfs.cpio.gz" ]; then \
		install -d $(DESTDIR)$(GUESTDIR) && \
		for f in vmlinux bzImage initramfs.cpio.gz agent-initrd.cpio kernel-version; do \
			[ ! -r "$(GUEST)/$$f" ] || install -m 644 "$(GUEST)/$$f" $(DESTDIR)$(GUESTDIR)/$$f || exit 1; \
		done; \
		echo "install: the default guest from $(GUEST) in $(DESTDIR)$(GUESTDIR)"; \
	else \
		echo "install: no default guest in $(GUEST) (run guest/build, then make install again);" \
		     "until then 'virtus vm run' needs --kernel" >&2; \
	fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/virtus $(DESTDIR)$(BINDIR)/virtus-runtime
	rm -f $(DESTDIR)$(MANDIR)/man1/virtus.1 $(DESTDIR)$(MANDIR)/man8/virtus-runtime.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/virtus $(DESTDIR)$(BASHCOMPDIR)/virtus-runtime
	rm -rf $(DESTDIR)$(GUESTDIR) $(DESTDIR)$(PREFIX)/share/virtus
	rm -f $(DESTDIR)$(STOREDIR)/libvirtus-store.so $(DESTDIR)$(STOREDIR)/virtus-agent
	-rmdir $(DESTDIR)$(PREFIX)/lib/virtus 2>/dev/null

clean:
	rm -rf build build-asan

-include $(shell find $(B) -name '*.d' 2>/dev/null)
