/* Jumps to the BIOS reset vector, as Linux's machine_real_restart() does: the VMM's reset-vector stub must
 * turn that into a platform reset (exit status 3), never an endless loop. */
#include "pvh_note.h"
GUEST_ENTRY
	PUTS(msg)
	jmp 0xffff0
PUTS_FUNC
msg:	.asciz "virtus-test: jumping to the reset vector\n"
