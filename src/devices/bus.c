#include "devices/bus.h"

#include <string.h>

int bus_register(struct io_bus *bus, uint64_t base, uint64_t len, io_handler_fn fn, void *opaque,
		 const char *name, vt_err *err)
{
	if (len == 0 || base + len < base)
		return vt_fail(err, "%s: invalid range 0x%llx+0x%llx", name, (unsigned long long)base, (unsigned long long)len);
	if (bus->n == BUS_MAX_RANGES)
		return vt_fail(err, "%s: too many I/O ranges", name);
	unsigned pos = 0;
	while (pos < bus->n && bus->range[pos].base < base)
		pos++;
	if (pos > 0) {
		const struct io_range *prev = &bus->range[pos - 1];
		if (prev->base + prev->len > base)
			return vt_fail(err, "%s: range 0x%llx overlaps %s", name, (unsigned long long)base, prev->name);
	}
	if (pos < bus->n && base + len > bus->range[pos].base)
		return vt_fail(err, "%s: range 0x%llx overlaps %s", name, (unsigned long long)base, bus->range[pos].name);
	memmove(&bus->range[pos + 1], &bus->range[pos], (bus->n - pos) * sizeof(bus->range[0]));
	bus->range[pos] = (struct io_range){ .base = base, .len = len, .fn = fn, .opaque = opaque, .name = name };
	bus->n++;
	return 0;
}

const struct io_range *bus_find(const struct io_bus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->n;
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;
		const struct io_range *r = &bus->range[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

static void note_unclaimed(struct io_bus *bus, uint64_t addr)
{
	__atomic_add_fetch(&bus->unhandled, 1, __ATOMIC_RELAXED);
	if (addr == 0)
		return;
	for (unsigned i = 0; i < BUS_UNCLAIMED_SLOTS; i++) {
		struct unclaimed_slot *s = &bus->unclaimed[i];
		uint64_t expected = 0;
		if (__atomic_load_n(&s->addr, __ATOMIC_RELAXED) == addr ||
		    __atomic_compare_exchange_n(&s->addr, &expected, addr, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
			__atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
			return;
		}
		if (expected == addr) {
			__atomic_add_fetch(&s->count, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

bool bus_dispatch(struct io_bus *bus, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	struct io_range *r = (struct io_range *)bus_find(bus, addr);
	if (!r || len > r->len - (addr - r->base)) {
		note_unclaimed(bus, addr);
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	__atomic_add_fetch(&r->accesses, 1, __ATOMIC_RELAXED);
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}
