/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The one interface between the BPF programs and userspace. Rust never
 * re-declares these: it uses the types libbpf-cargo generates from the
 * skeleton (`types::event`, `types::event_kind`, `types::drop_kind`, …), so
 * a change here is a compile error on the Rust side rather than a silent
 * layout mismatch. Constants are enums, not #defines, because only what is
 * in the object's BTF reaches the skeleton (utrace.bpf.c keeps one global
 * of each type for that).
 */
#ifndef UTRACE_H
#define UTRACE_H

enum utrace_limits {
	/* Frames kept per thread with timestamp and stack pointer. Deeper
	 * calls are still counted (depth stays exact) but cannot be
	 * time-filtered or checked against the stack pointer. */
	MAX_FRAMES = 1024,
	/* Counting mode: functions numbered after load (a library dlopen
	 * loads, a program a child execs) that `late_counts` holds. */
	LATE_COUNTS_MAX = 1 << 16,
	/* -A/-R: the spare slots of `value_specs` for functions numbered
	 * after load, when late code may come. */
	LATE_VALUES_MAX = 1 << 14,
	/* Counting mode: buckets of open calls per function id (a power of 2). */
	OPEN_BUCKETS = 1024,
	/* Events a thread queues before they go out as one record. */
	BATCH_EVENTS = 32,
	/* struct event's depth is 16 bits: --max-depth is capped here. */
	MAX_SENT_DEPTH = 0xffff,
	/* Returns hijacked at once per thread (--exit=auto), below the
	 * kernel's 64 (MAX_URETPROBE_DEPTH): deeper calls get ret sites. */
	HIJACK_BUDGET = 60,
	/* The hijacks above HIJACK_BUDGET, up to this, are kept for short
	 * calls (COOKIE_SHORT_BIT, or a function BPF has never seen call a
	 * traced one): deep recursion holds the first 60 for long, and the
	 * small functions called at the bottom of it are most of the calls a
	 * program makes there. One per level of a short call's
	 * nesting (symbols' SHORT_HEIGHT + 1), one spare below the kernel's
	 * 64: every hijack checks a budget, and a longjmp's stale return
	 * instances never push the kernel's count past the highest budget. */
	SHORT_BUDGET = 63,
	/* How far past a function's first byte its entry probe may sit
	 * (moved off a single-stepped instruction): settle_jump tells a jump
	 * to the function by it. Symbols' ENTRY_MOVE_MAX is the same. */
	ENTRY_SLACK = 32,
};

/* Entry cookies carry the function id in their low 32 bits and these flags
 * above it (bit numbers: an enum cannot hold a 64-bit mask portably). */
enum cookie_bits {
	/* Entry: the function's exit is probed at its ret sites, not by
	 * hijacking its return address. On a call-return site (on_exit as a
	 * plain uprobe): it ends such a frame. */
	COOKIE_RET_SITE_BIT = 63,
	/* On a ret site: it is a tail jump, where the return value is not
	 * computed yet (-R shows it as unknown). */
	COOKIE_TAIL_JUMP_BIT = 62,
	/* Entry: a short call (a leaf, or a PLT stub into a library), which
	 * may take a hijack up to SHORT_BUDGET. */
	COOKIE_SHORT_BIT = 61,
	/* Entry: probed at a `call` to the function (a PLT stub), where the
	 * stack pointer is one slot above the function's entry value. */
	COOKIE_AT_CALL_BIT = 60,
	/* On a ret site: a tail jump to a traced function whose return is
	 * seen at this same slot. The frame stays open and ends with that
	 * call, as two hijacked returns chain on one return address. On an
	 * entry: a function ended where its calls return, whose tail jumps
	 * are not probed: its frame is chained from the start. */
	COOKIE_CHAIN_BIT = 59,
	/* On a ret site: a conditional jump (a conditional tail call), whose
	 * condition code (x86's 0-15) sits at COOKIE_CC_SHIFT. Not taken, the
	 * function goes on. */
	COOKIE_JCC_BIT = 58,
	COOKIE_CC_SHIFT = 32,
	/* On a chaining ret site: a jump through a register (`jmp *%reg`),
	 * whose number (x86's 0-15: rax rcx rdx rbx rsp rbp rsi rdi r8-r15)
	 * sits at COOKIE_REG_SHIFT. BPF keeps where it went: a function that
	 * jumps to its own entry (a tail call of itself through a pointer) is
	 * then told from one called again from the same call site. */
	COOKIE_JMP_REG_BIT = 57,
	COOKIE_REG_SHIFT = 36,
	/* On an entry at a call to a PLT stub: the call runs on into a `ret`
	 * of its traced caller, and its own return is not probed (it would be
	 * single-stepped). The caller's exit ends it, a few instructions late. */
	COOKIE_WITH_CALLER_BIT = 56,
	/* On a ret site: a branch into an epilogue, standing in for its `ret`
	 * (symbols' epilogue.rs): the stack pointer at that `ret` is this
	 * one's plus 8 × the slots at COOKIE_SLOTS_SHIFT (8 bits). A `jcc`'s
	 * condition (COOKIE_JCC) is that of the way into the epilogue. */
	COOKIE_EARLY_BIT = 55,
	COOKIE_SLOTS_SHIFT = 40,
	/* On a ret site: a direct call to a traced function that returns into
	 * the epilogue, COOKIE_SLOTS_SHIFT's slots below its `ret`. The frame
	 * chains to the callee's and ends with it. */
	COOKIE_INTO_RET_BIT = 54,
};

/* What BPF could not deliver, counted per CPU in the `drops` map (indexed
 * by this): each kind has its own cause, so userspace names its own remedy. */
enum drop_kind {
	/* The ring buffer was full: the events were dropped. */
	DROP_RINGBUF = 0,
	/* A thread's state (task storage) could not be created: its calls
	 * were not traced at all. */
	DROP_NOSTATE = 1,
	/* With a time filter, a call nested deeper than MAX_FRAMES: BPF has
	 * no entry time to filter it on, and leaves it out. */
	DROP_UNFILTERED = 2,
	/* Counting mode: a call of a function numbered after load whose
	 * counts found no room in `late_counts` (LATE_COUNTS_MAX functions). */
	DROP_UNCOUNTED = 3,
	/* A call at a stub that only its caller's exit ends (COOKIE_WITH_CALLER),
	 * nested deeper than MAX_FRAMES, where BPF keeps no frame to mark. */
	DROP_TOO_DEEP = 4,
	DROP_KINDS = 5,
};

/* Signals BPF sends with bpf_send_signal(), which takes a bare number.
 * Rust checks these against libc's at compile time. */
enum utrace_signal {
	UTRACE_SIGSTOP = 19,
};

enum event_kind {
	EV_ENTRY = 1,
	EV_EXIT = 2,
	/* The process's mappings changed (dlopen, dlclose, exec): it is
	 * stopped until userspace has attached what was mapped. */
	EV_LOAD = 3,
	/* The thread's frames at `depth` and deeper ended at `ts` without a
	 * return: an exception was caught above them, or a longjmp left them. */
	EV_UNWIND = 4,
	/* The thread's open frames end here without a return: it exited, or
	 * exec'd another program (`depth` 0). */
	EV_GONE = 5,
	/* A call of `func` went deeper than the kernel can hijack returns: the
	 * process is stopped until userspace has attached `func`'s ret sites. */
	EV_NEED_EXITS = 6,
	/* A call of `func` that returns into its epilogue could not chain its
	 * frame to the callee's (deeper than BPF keeps frames, or --max-rate
	 * may mute the callee): the process is stopped until userspace has
	 * attached the `ret`s those calls stood in for. */
	EV_NEED_RETS = 7,
};

/* --exit=auto: a function's entry in the `exit_sites` map. */
enum exit_sites_state {
	/* Its calls went deeper than HIJACK_BUDGET: BPF asked for its ret
	 * sites (EV_NEED_EXITS); userspace attached them. */
	EXITS_ASKED = 1,
	EXITS_ATTACHED = 2,
	/* A call of its returning into its epilogue could not chain its frame
	 * (EV_NEED_RETS): BPF asked for the `ret`s; userspace attached them. */
	EXITS_RETS_ASKED = 3,
	EXITS_RETS_ATTACHED = 4,
};

/* Where an entry probe's frame ends (struct frame.exit). */
enum frame_exit {
	/* Its return address is hijacked (uretprobe or session return). */
	EXIT_HIJACKED = 0,
	/* Probes on its ret sites (or after the calls to a PLT stub) see it. */
	EXIT_RET_SITES = 1,
};

/* Probes on the unwinder and longjmp, by attach cookie: they tell BPF when
 * frames are left without a return, so those end where and when they were
 * left, not at the thread's next event. */
enum helper_kind {
	/* _Unwind_RaiseException and kin: an exception is on its way. */
	HELPER_UNWIND_START = 1,
	/* __cxa_begin_catch: it was caught, and the frames below the catch are
	 * gone (a callee at the catcher's call slot too). */
	HELPER_CATCH = 2,
	/* longjmp and kin: the frames it leaves end now. */
	HELPER_LONGJMP = 3,
	/* _Unwind_DeleteException, where Rust's catch_unwind frees a panic (and
	 * __cxa_end_catch may tail-call it): the frames below it are gone. */
	HELPER_FREED = 4,
};

enum event_flags {
	/* The thread lost events (ring buffer full) just before this one. */
	EVF_AFTER_LOSS = 1,
	/* Counting mode, an entry deeper than MAX_FRAMES: its function is open
	 * in the thread's frames too (a nested activation). */
	EVF_NESTED = 2,
};

/* 16 bytes. The thread is in the batch's head: events travel in batches. */
struct event {
	__u64 ts;    /* bpf_ktime_get_ns(): CLOCK_MONOTONIC, ns */
	__u32 func;  /* function id: the attach cookie */
	__u16 depth; /* 0 for an outermost traced call; an exit carries its entry's depth */
	__u8 kind;   /* enum event_kind */
	__u8 flags;  /* EVF_* */
};

/* Events wait in their thread's state and go out as one ring-buffer record
 * of up to BATCH_EVENTS: a reservation per event cost more than the rest of
 * the BPF side of a traced call. */

/* What a ring-buffer record holds (batch_head.kind). */
enum record_kind {
	REC_BATCH = 0,   /* struct batch: a thread's queued events */
	REC_SYSCALL = 1, /* struct syscall_record: one system call */
	REC_VALUES = 2,  /* struct values_record: a call's arguments or return value */
};

struct batch_head {
	__u32 pid; /* thread group id, as userspace sees it */
	__u32 tid;
	__u32 kind; /* enum record_kind */
	__u32 pad;
};

/* One ring-buffer record: a head, then (record size - head) / event size
 * events of that thread, oldest first. */
struct batch {
	struct batch_head head;
	struct event events[BATCH_EVENTS];
};

/* Counting mode: one per traced function and CPU, for the calls within
 * MAX_FRAMES of their thread's outermost traced call (the deeper ones come
 * as events). */
struct func_counts {
	__u64 count;
	__u64 total_ns;
	__u64 self_ns; /* less traced callees */
	__u64 min_ns;
	__u64 max_ns;
	__u64 sum_ns; /* every call's duration, nested recursive ones too: avg = sum / count */
	__u64 running; /* of `count`, still running at detach: timed to it */
};

/* --syscalls: what BPF needs to know per system call number. */
enum syscall_limits {
	/* Bytes copied per memory argument (a path, a sockaddr) at entry;
	 * more is cut and marked so. */
	COPY_MAX = 256,
	/* Entries of `syscall_specs`: numbers at or above are not traced. */
	SYSCALL_SLOTS = 1024,
	/* The caller of a system call made outside every traced call. */
	SYS_NO_CALLER = 0x7fffffff,
};

/* How a memory argument is copied (struct syscall_spec.copy). */
enum copy_kind {
	COPY_NONE = 0,
	COPY_STR = 1,   /* a NUL-terminated string: a path */
	COPY_BYTES = 2, /* `len_arg` bytes: a sockaddr and its socklen */
	COPY_FIXED = 3, /* `len` bytes */
};

/* Which way a read/write-family call moves bytes (syscall_spec.moves_bytes). */
enum io_dir {
	IO_NONE = 0,
	IO_READS = 1,
	IO_WRITES = 2,
};

/* Filled by userspace from its syscall table, indexed by number. */
struct syscall_spec {
	__u8 traced;       /* in the --syscalls set */
	__u8 moves_bytes;  /* enum io_dir: a result >= 0 is bytes moved that way */
	__u8 copy[2];      /* enum copy_kind, for up to two arguments */
	__u8 arg[2];       /* which argument (0-5) points to the memory */
	__u8 len_arg[2];   /* COPY_BYTES: which argument holds the length */
	__u16 len[2];      /* COPY_FIXED: the length */
};

enum syscall_flags {
	SYSF_AFTER_LOSS = 1, /* as EVF_AFTER_LOSS */
	SYSF_NO_RETURN = 2,  /* it never returned: exit, or its thread ended */
	SYSF_GOT0 = 4,       /* the first copy was read (else: bad pointer) */
	SYSF_GOT1 = 8,
	SYSF_CUT0 = 16,      /* the first copy was longer than COPY_MAX */
	SYSF_CUT1 = 32,
	SYSF_IO = 64,        /* --io: `io` says what happened below the call */
};

/* --io: what one system call caused below it, in its own thread. */
struct syscall_io {
	__u32 cache_pages; /* pages asked of the page cache (reads) */
	__u32 cache_added; /* pages it had to add: misses and read-ahead */
	__u32 dirtied;     /* pages dirtied */
	__u32 requests;    /* block requests it waited for */
	__u64 read_bytes;  /* bytes it submitted to a block device */
	__u64 write_bytes;
	__u64 device_ns;   /* device time of its requests */
};

struct syscall_event {
	__u64 ts;     /* entry, CLOCK_MONOTONIC ns */
	__u64 end_ts; /* return (or when it was seen never to return) */
	__s64 ret;
	__u64 args[6];
	__u32 nr;
	__u32 caller; /* the innermost open traced call's id, or SYS_NO_CALLER */
	__u16 depth;  /* traced calls open around it: its caller's depth + 1 */
	__u16 len[2]; /* bytes of each copy, back to back in `data` */
	__u8 flags;   /* enum syscall_flags */
	__u8 pad;
	struct syscall_io io;
};

/* One ring-buffer record per system call, sent when it returns: a head
 * (kind REC_SYSCALL), the call, then len[0] + len[1] bytes of copies. */
struct syscall_record {
	struct batch_head head;
	struct syscall_event sys;
	__u8 data[2 * COPY_MAX];
};

/* Counting mode: per (caller, number) and CPU. */
struct syscall_key {
	__u32 caller;
	__u32 nr;
};

struct syscall_counts {
	__u64 count;
	__u64 errors; /* results in -4095..-1 */
	__u64 total_ns;
	__u64 min_ns;
	__u64 max_ns;
	__u64 bytes; /* results >= 0 of the read/write family */
};

/* --io: the I/O below each traced function, summed per CPU in `io_counts`
 * by the function (its id; SYS_NO_CALLER outside every traced call, and
 * IO_OTHER for the devices' traffic the program did not cause). */
enum io_limits {
	IO_OTHER = 0x7ffffffe,
};

struct io_counts {
	__u64 syscall_read_bytes;
	__u64 syscall_write_bytes;
	__u64 cache_pages; /* asked of the page cache: hits = these - misses */
	__u64 cache_miss_pages;
	__u64 dirtied_pages;
	__u64 block_read_bytes;  /* submitted by the function's own thread */
	__u64 block_write_bytes; /* written directly (O_DIRECT): no page cache */
	__u64 block_requests;
	__u64 writeback_bytes;   /* pages it dirtied, written back (now or later) */
	__u64 forced_writeback_bytes; /* written back because it asked (fsync…) */
	__u64 device_ns;
	__u64 max_device_ns;
};

/* -A/-R: what BPF reads at a traced function's entry and return, per
 * function id in `value_specs`. Userspace places each value by the x86-64
 * SysV ABI; SSE registers are out of reach (pt_regs holds none). */
enum value_limits {
	VALUES_MAX = 8,     /* values per entry or return */
	VALUE_STR_MAX = 64, /* bytes copied per string; a longer one is cut and marked */
};

enum value_source {
	VAL_NONE = 0,  /* not read */
	VAL_REG = 1,   /* pt_regs, by `index`: 0-5 rdi rsi rdx rcx r8 r9, 6 rax, 7 rdx */
	VAL_STACK = 2, /* at entry, the word `offset` bytes above the return address */
};

struct value_slot {
	__u8 source; /* enum value_source */
	__u8 index;
	__u8 string; /* the word points to a C string: copy it */
	__u8 pad;
	__u16 offset;
	__u16 pad2;
};

struct value_spec {
	__u8 nargs;   /* args[0..nargs) are read at entry */
	__u8 has_ret; /* ret is read at return */
	__u8 pad[6];
	struct value_slot args[VALUES_MAX];
	struct value_slot ret;
};

enum value_flags {
	VALF_READ = 1, /* the word was read */
	VALF_TEXT = 2, /* its string was copied: `len` bytes in data, in order */
	VALF_CUT = 4,  /* the string went on past VALUE_STR_MAX */
	VALF_TAIL = 8, /* a return seen at a tail jump: the value is not there yet */
	VALF_STRING = 16, /* the spec asked for its string (none: NULL or unreadable) */
};

struct values_event {
	__u64 ts;    /* the entry's or exit's time stamp: it pairs them */
	__u32 func;
	__u16 depth; /* the entry's or exit's depth */
	__u8 at_exit;
	__u8 count;
	__u64 words[VALUES_MAX];
	__u8 flags[VALUES_MAX]; /* enum value_flags */
	__u8 len[VALUES_MAX];
};

/* One ring-buffer record (kind REC_VALUES), sent just before the event it
 * belongs to: a head, the values, then their strings back to back. */
struct values_record {
	struct batch_head head;
	struct values_event v;
	__u8 data[VALUES_MAX * VALUE_STR_MAX];
};

#endif
