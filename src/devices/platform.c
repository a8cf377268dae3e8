#include "devices/platform.h"

#include <string.h>

void i8042_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct platform_dev *p = opaque;
	if (!is_write) {
		memset(data, 0, len); /* status: output and input buffers empty; data: nothing */
		return;
	}
	/* offset 4 is the command port (0x64); 0 the data port. */
	if (offset == 4 && data[0] == I8042_CMD_RESET)
		p->notify(p->opaque, PLATFORM_RESET);
}

void acpi_sleep_io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct platform_dev *p = opaque;
	if (!is_write) {
		memset(data, 0, len);
		return;
	}
	if (offset != 0)
		return;
	uint8_t v = data[0];
	unsigned slp_typ = (v >> ACPI_SLP_TYP_SHIFT) & 7;
	if ((v & ACPI_SLP_EN) && slp_typ == ACPI_SLP_TYP_S5)
		p->notify(p->opaque, PLATFORM_POWEROFF);
}
