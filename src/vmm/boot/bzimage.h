/* Offsets in boot_params and its embedded setup header (Linux boot protocol), shared with the tests. */
#ifndef VIRTUS_BZIMAGE_H
#define VIRTUS_BZIMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "lib/err.h"

#define BP_SIZE              4096
#define BP_ACPI_RSDP_ADDR    0x070
#define BP_EXT_RAMDISK_IMAGE 0x0c0
#define BP_EXT_RAMDISK_SIZE  0x0c4
#define BP_E820_ENTRIES      0x1e8
#define BP_SETUP_SECTS       0x1f1
#define BP_SYSSIZE           0x1f4   /* protected-mode code size in 16-byte units (32 bits since 2.04) */
#define BP_BOOT_FLAG         0x1fe
#define BP_HDR_MAGIC         0x202
#define BP_VERSION           0x206
#define BP_TYPE_OF_LOADER    0x210
#define BP_LOADFLAGS         0x211
#define BP_CODE32_START      0x214
#define BP_RAMDISK_IMAGE     0x218
#define BP_RAMDISK_SIZE      0x21c
#define BP_HEAP_END_PTR      0x224
#define BP_CMD_LINE_PTR      0x228
#define BP_INITRD_ADDR_MAX   0x22c
#define BP_XLOADFLAGS        0x236
#define BP_CMDLINE_SIZE      0x238
#define BP_PAYLOAD_OFFSET    0x248   /* compressed kernel, from the start of the protected-mode code */
#define BP_PAYLOAD_LENGTH    0x24c
#define BP_INIT_SIZE         0x260
#define BP_E820_TABLE        0x2d0
#define BP_SETUP_HDR_END_MIN 0x264   /* through init_size: everything a 2.12+ loader reads */

#define LOADFLAG_LOADED_HIGH  0x01
#define LOADFLAG_CAN_USE_HEAP 0x80
#define XLF_KERNEL_64         0x01

struct bzimage_info {
	uint16_t version;
	size_t setup_size;       /* bytes of real-mode setup before the protected-mode kernel */
	size_t header_end;       /* end offset of the setup header */
	size_t kernel_size;      /* protected-mode kernel bytes in the file */
	uint32_t cmdline_max;
	uint32_t initrd_addr_max;
	uint32_t init_size;      /* memory the kernel needs from its load address */
};

/* Parse and check the header against the file: a truncated or inconsistent image is refused here,
 * before anything is loaded, rather than triple-faulting in the guest. */
int bzimage_parse(const void *image, size_t size, struct bzimage_info *info, vt_err *err);

#endif
