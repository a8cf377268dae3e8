/* The small platform devices that end a VM's life: the i8042 reset line and the ACPI sleep register. */
#ifndef VIRTUS_PLATFORM_H
#define VIRTUS_PLATFORM_H

#include <stdbool.h>
#include <stdint.h>

enum platform_event { PLATFORM_POWEROFF, PLATFORM_RESET };
typedef void (*platform_event_fn)(void *opaque, enum platform_event ev);

struct platform_dev {
	platform_event_fn notify;
	void *opaque;
};

#define I8042_CMD_RESET    0xfe
#define ACPI_SLP_EN        0x20
#define ACPI_SLP_TYP_SHIFT 2
#define ACPI_SLP_TYP_S5    5

/* Ports 0x60/0x64: status reads "empty", command 0xFE pulses reset. */
void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/* Hardware-reduced ACPI sleep control (offset 0) and status (offset 1) registers. */
void acpi_sleep_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
