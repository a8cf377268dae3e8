/* Counts forever in guest memory (the 32-bit word at COUNTER) without a single exit: the host watches the
 * counter to see whether the vCPU runs (pause and resume tests). Other vCPUs stay waiting for a SIPI. */
#include "pvh_note.h"
#define COUNTER 0x7f00
GUEST_ENTRY
	movl $0, COUNTER
1:	incl COUNTER
	jmp 1b
