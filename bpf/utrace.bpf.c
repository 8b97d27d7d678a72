// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * utrace's BPF side: entry and exit programs (a uretprobe, a probe on the
 * function's ret sites or after a call to a PLT stub, or one session
 * program), attached through uprobe_multi links to every traced function
 * with the function id as the attach cookie. They keep a per-thread shadow
 * stack matched by stack pointer, apply the depth and time filters, count
 * (counting mode) or queue events per thread and send them through a ring
 * buffer in batches. Tracepoints send what a thread queued when it is
 * switched out or exits, and follow forks and execs; a loader probe catches
 * dlopen. System calls (syscalls.bpf.inc) and the I/O below them
 * (io.bpf.inc) come from the kernel's tracepoints into the same per-thread
 * order; -A/-R values (values.bpf.inc) come just before their events. Names never reach BPF; drops are counted, never silent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "utrace.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set by userspace between open and load; the verifier then prunes the
 * branches they disable. */
const volatile __u32 max_depth = MAX_SENT_DEPTH; /* entries deeper than this are not sent */
const volatile __u64 min_duration_ns = 0; /* 0: no time filter */
const volatile __u64 wakeup_bytes = 256 * 1024; /* wake the reader past this backlog */
/* Aggregate per function in `counts` and send no events at all. */
const volatile bool count_only = false;
/* Trace the processes in `procs` (the target and every process it forks)
 * instead of relying on the links' pid filter. */
const volatile bool follow_forks = false;
/* --exit=auto: session returns within HIJACK_BUDGET, ret sites on demand
 * beyond it. */
const volatile bool repair_exits = false;
/* --syscalls: every thread of a traced process has state from its start
 * (see adopt()), so the syscall tracepoints gate on one lookup. */
const volatile bool trace_syscalls = false;
/* --io: the page cache, block and writeback tracepoints are attached. */
const volatile bool trace_io = false;
/* --max-rate: `muted` is consulted at every entry. */
const volatile bool rate_limited = false;
/* -A/-R: `value_specs` is consulted at every sent entry and exit. */
const volatile bool capture_values = false;

/* A batch waiting longer than this goes out with the thread's next event
 * (a thread that blocks or exits sends it at once). */
#define FLUSH_AFTER_NS (10 * 1000 * 1000ULL)

#define barrier() asm volatile("" ::: "memory")
#define offsetof(type, member) __builtin_offsetof(type, member)

/* A bit per tgid (modulo the size) of every traced process: the syscall and
 * page cache tracepoints fire for every thread on the machine, and a bit
 * test costs an untraced one less than the task-storage lookup behind it.
 * Userspace sets the target's bit; BPF the bits of processes it follows. */
#define TGID_BITS (1 << 16)
__u64 traced_tgids[TGID_BITS / 64] = {};

/* Set by userspace when the run ends, before the probes are detached
 * (which can take seconds): nothing new is traced from then on, so the
 * results can be shown at once. Queued events still go out. */
volatile bool paused = false;

/* --exit=auto: threads with more calls open than HIJACK_BUDGET. Only they
 * can hold calls whose return BPF declined to hijack, the ones the ret
 * sites attached on demand end: when none is left, userspace takes those
 * ret sites away again (a BPF request brings them back). */
__u64 deep_threads = 0;

static __always_inline void mark_traced(__u32 tgid)
{
	__sync_fetch_and_or(&traced_tgids[(tgid / 64) % (TGID_BITS / 64)], 1ULL << (tgid % 64));
}

static __always_inline bool maybe_traced(void)
{
	/* The task's own field: bpf_get_current_pid_tgid() walks the pid
	 * namespace (perf showed it at a tenth of a bystander's syscall). */
	__u32 tgid = bpf_get_current_task_btf()->tgid;

	if (paused)
		return false;
	return traced_tgids[(tgid / 64) % (TGID_BITS / 64)] & (1ULL << (tgid % 64));
}

/* Keep the generated skeleton carrying utrace.h's types for Rust. */
struct batch _batch = {};
enum event_kind _event_kind = EV_ENTRY;
enum event_flags _event_flags = EVF_AFTER_LOSS;
struct func_counts _func_counts = {};
enum utrace_limits _utrace_limits = MAX_FRAMES;
enum cookie_bits _cookie_bits = COOKIE_RET_SITE_BIT;
enum drop_kind _drop_kind = DROP_RINGBUF;
enum utrace_signal _utrace_signal = UTRACE_SIGSTOP;
enum frame_exit _frame_exit = EXIT_HIJACKED;
enum helper_kind _helper_kind = HELPER_UNWIND_START;
struct syscall_record _syscall_record = {};
struct syscall_spec _syscall_spec = {};
struct syscall_key _syscall_key = {};
struct syscall_counts _syscall_counts = {};
enum record_kind _record_kind = REC_BATCH;
enum syscall_limits _syscall_limits = COPY_MAX;
enum copy_kind _copy_kind = COPY_NONE;
enum syscall_flags _syscall_flags = SYSF_AFTER_LOSS;
struct io_counts _io_counts = {};
enum io_limits _io_limits = IO_OTHER;
enum io_dir _io_dir = IO_NONE;
struct values_record _values_record = {};
struct value_spec _value_spec = {};
enum value_source _value_source = VAL_NONE;
enum value_flags _value_flags = VALF_READ;
enum value_limits _value_limits = VALUES_MAX;
enum exit_sites_state _exit_sites_state = EXITS_ASKED;

struct frame {
	__u64 ts;
	__u64 sp;    /* stack pointer at entry: where the return address lives */
	__u64 child; /* time spent in traced callees (counting mode) */
	__u32 func;
	__u8 exit; /* enum frame_exit */
	__u8 chained; /* it tail-jumped (COOKIE_CHAIN): it ends with the call on top */
	__u8 with_caller; /* COOKIE_WITH_CALLER: the caller's exit ends it */
	/* Chained by a call returning into its epilogue (COOKIE_INTO_RET): the
	 * callee's slot is this many slots below its own. 0: a tail jump's, at
	 * its own slot. */
	__u8 gap;
};

struct thread_state {
	__u32 depth;   /* traced calls open on this thread */
	__u32 emitted; /* with a time filter: frames below this have sent their entry */
	__u32 lost;    /* an event of this thread was dropped since its last one */
	__u32 queued;  /* events waiting in `out` */
	/* A uprobe program is writing this state. They are preemptible, and
	 * sched_switch must then leave the queue alone. */
	__u32 busy;
	__u32 hijacked; /* open frames with EXIT_HIJACKED */
	/* An exception or a longjmp abandons frames from this time on: the
	 * next frames found dead ended then, not at the next event. Frames
	 * entered before it are dead where a new call reuses their slot. */
	__u64 abandoned_ts;
	/* A chaining tail jump (COOKIE_CHAIN) left the frame at jump_depth - 1
	 * at jump_ts; the return address in its slot was jump_ret. Until the
	 * thread's next traced event says whether the jump reached a traced
	 * function (settle_jump). */
	__u64 jump_ts, jump_ret;
	/* Where the jump went, when it was through a register; else 0. */
	__u64 jump_target;
	__u32 jump_depth;
	__u32 unwinding; /* an exception is on its way to a catch */
	__u32 in_syscall; /* `sys` holds a system call that has not returned */
	struct batch out;
	struct frame frames[MAX_FRAMES];
	/* Filled at the system call's entry, sent as it is at its return. */
	struct syscall_record sys;
	/* Counting mode: entry of the open call at depth MAX_FRAMES, the first
	 * without a frame, whose time its caller's frame must not count as its own. */
	__u64 deep_ts;
	/* -A/-R: the values being read, sent at once. */
	struct values_record vals;
	/* --io: the last range asked of the page cache (on_cache_get). */
	struct {
		__u64 mapping, last, reads;
	} asked;
	/* --io: the thread's own counts of bytes read and written (task->ioac)
	 * when its bytes were last given to a call (io_settle). */
	struct {
		__u64 rchar, wchar;
	} moved;
	/* Counting mode: how many frames are open per function id bucket. A
	 * call whose bucket holds only itself is open nowhere below, which
	 * spares the walk over the frames (open_below) at most returns. */
	__u16 open_funcs[OPEN_BUCKETS];
};

/* Task storage lives and dies with the thread: no table to fill up, nothing
 * to clean when a thread exits, however many threads a run creates. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct thread_state);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024); /* resized by userspace before load */
} events SEC(".maps");

/* Events BPF could not deliver, per enum drop_kind and CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, DROP_KINDS);
	__type(key, __u32);
	__type(value, __u64);
} drops SEC(".maps");

/* Processes being traced when following forks: the target, then every
 * process forked by a traced one, until it exits. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u8);
} procs SEC(".maps");

/* -c: the command utrace forked, until it execs: before that it still runs
 * utrace's own code (the child's side of fork), which is not the trace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} before_exec SEC(".maps");

/* Stops BPF asked for, per process (tgid): a process stopped for two
 * reasons at once must stay stopped until userspace has handled both, and
 * a SIGCONT for the first would discard the second SIGSTOP. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 8192);
	__type(key, __u32);
	__type(value, __u64);
} stop_requests SEC(".maps");

/* --exit=auto: what was asked and attached of each function's ret sites
 * (enum exit_sites_state). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, __u8);
} exit_sites SEC(".maps");

/* --syscalls: what to do per system call number (filled before attach). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, SYSCALL_SLOTS);
	__type(key, __u32);
	__type(value, struct syscall_spec);
} syscall_specs SEC(".maps");

/* Counting mode with --syscalls: per (caller, number), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct syscall_key);
	__type(value, struct syscall_counts);
} syscall_counts SEC(".maps");

/* --max-rate: functions being dropped (1), by id. Their new calls are not
 * traced from the moment userspace sets this; their probes go a second
 * later, so that the calls open now still end at their own returns.
 * Sized to the number of traced functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} muted SEC(".maps");

/* --exit=auto: functions seen with a traced call of their own (1), by id.
 * One never seen so has been a leaf so far and is taken for a short call
 * (SHORT_BUDGET) as well as the ones symbols found short: Lua's lua_settop
 * may call on through its metamethods, but in deep recursion its calls are
 * leaves, and a hijack kept for them spares ret sites every one of its calls
 * would trap on. A function that turns out to recurse holds at most one of
 * those hijacks: its first call marks it as it enters. Sized to the number
 * of traced functions before load; later ones are never taken for short. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u8);
} callers SEC(".maps");

/* -A/-R: what to read at a function's entry and return, by id. Sized to the
 * number of traced functions before load, and LATE_VALUES_MAX more when a
 * library dlopen loads later may have values to read (one map: a second one
 * for those doubles what the verifier walks in send_values). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct value_spec);
} value_specs SEC(".maps");

/* Counting mode: per function, per CPU; userspace sums the CPUs. Sized to
 * the number of traced functions before load. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct func_counts);
} counts SEC(".maps");

/* Counting mode: the functions numbered after load, past `counts`, as they
 * are first counted (allocated then: most runs load nothing late). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, LATE_COUNTS_MAX);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct func_counts);
} late_counts SEC(".maps");

static __always_inline void count_drops(__u32 which, __u64 events)
{
	__u64 *n = bpf_map_lookup_elem(&drops, &which);

	if (n)
		*n += events;
}

/* Sends the thread's queued events as one record. Only the thread's own CPU
 * touches its state while it is traced; the exchange keeps the detach-time
 * iterator and a sched_switch still running on another CPU from sending a
 * batch twice. */
static __always_inline void flush(struct thread_state *s)
{
	__u32 n = __sync_lock_test_and_set(&s->queued, 0);
	/* A wakeup per record would cost the traced thread: the reader polls
	 * on a short timer and is only woken when a backlog builds. */
	__u64 flags = BPF_RB_NO_WAKEUP;

	if (n == 0 || n > BATCH_EVENTS)
		return;
	if (bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&events, &s->out, sizeof(s->out.head) + n * sizeof(struct event), flags)) {
		count_drops(DROP_RINGBUF, n);
		/* The thread's next event says its stack has a hole. */
		s->lost = 1;
	}
}

static __always_inline void emit_flags(struct thread_state *s, __u8 kind, __u32 func, __u64 ts,
				       __u32 depth, __u8 flags)
{
	__u32 n = s->queued;
	struct event *e;

	if (n >= BATCH_EVENTS) /* not reached: a full batch is sent at once */
		return;
	e = &s->out.events[n];
	e->ts = ts;
	e->func = func;
	e->depth = depth;
	e->kind = kind;
	e->flags = flags | (s->lost ? EVF_AFTER_LOSS : 0);
	s->lost = 0;
	s->queued = n + 1;
	/* Held entries (time filter) are older than the first queued event:
	 * the difference wraps and they go out at once, which is harmless. */
	if (n + 1 == BATCH_EVENTS || ts - s->out.events[0].ts >= FLUSH_AFTER_NS)
		flush(s);
}

static __always_inline void emit(struct thread_state *s, __u8 kind, __u32 func, __u64 ts, __u32 depth)
{
	emit_flags(s, kind, func, ts, depth, 0);
}

/* Brackets a uprobe program's work on `s`: see thread_state.busy. The
 * barriers keep the compiler from moving the state's stores out. */
static __always_inline void claim(struct thread_state *s)
{
	s->busy = 1;
	barrier();
}

static __always_inline void release(struct thread_state *s)
{
	barrier();
	s->busy = 0;
}

/* The mask is in asm because clang drops a C mask after the caller's own
 * range check, and the verifier then sees an unbounded index. */
static __always_inline struct frame *frame_at(struct thread_state *s, __u64 i)
{
	asm volatile("%0 &= %1" : "+r"(i) : "i"(MAX_FRAMES - 1));
	return &s->frames[i];
}

/* Every change of a thread's depth goes through here, for deep_threads. */
static __always_inline void set_depth(struct thread_state *s, __u32 depth)
{
	if (repair_exits) {
		bool was = s->depth > HIJACK_BUDGET, is = depth > HIJACK_BUDGET;

		if (is && !was)
			__sync_fetch_and_add(&deep_threads, 1);
		else if (was && !is)
			__sync_fetch_and_add(&deep_threads, -1);
	}
	s->depth = depth;
}

/* --io: a thread's bytes count from when it is first traced. */
static __always_inline void io_mark(struct thread_state *s, struct task_struct *task)
{
	if (trace_io) {
		s->moved.rchar = task->ioac.rchar;
		s->moved.wchar = task->ioac.wchar;
	}
}

static __always_inline struct thread_state *state_or_create(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct thread_state *s;
	__u32 tgid;

	if (paused)
		return NULL;
	/* Only threads of traced processes ever get state, so having it is
	 * proof enough: the hot path is this one lookup. */
	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s)
		return s;
	tgid = bpf_get_current_pid_tgid() >> 32;
	if (bpf_map_lookup_elem(&before_exec, &tgid))
		return NULL;
	if (follow_forks) {
		/* Links without a pid filter also fire in other processes
		 * running the same executable: they are not ours. */
		if (!bpf_map_lookup_elem(&procs, &tgid))
			return NULL;
	}
	s = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		count_drops(DROP_NOSTATE, 1);
		return NULL;
	}
	if (!s->out.head.tid) { /* new: storage starts zeroed */
		__u64 id = bpf_get_current_pid_tgid();

		s->out.head.pid = id >> 32;
		s->out.head.tid = (__u32)id;
		io_mark(s, task);
	}
	return s;
}

/* --syscalls: gives `task`, a thread of a traced process, its state now,
 * before its first system call: the syscall tracepoints fire for every
 * thread on the machine and must cost untraced ones a single lookup. */
static __always_inline void adopt(struct task_struct *task)
{
	struct thread_state *s = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);

	if (!s) {
		count_drops(DROP_NOSTATE, 1);
		return;
	}
	if (!s->out.head.tid) {
		s->out.head.pid = task->tgid;
		s->out.head.tid = task->pid;
		io_mark(s, task);
	}
}

/* Counts the stop, then stops the process (all its threads). */
static __always_inline void request_stop(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 zero = 0, *n = bpf_map_lookup_elem(&stop_requests, &tgid);

	if (!n) {
		bpf_map_update_elem(&stop_requests, &tgid, &zero, BPF_NOEXIST);
		n = bpf_map_lookup_elem(&stop_requests, &tgid);
	}
	if (n)
		__sync_fetch_and_add(n, 1);
	bpf_send_signal(UTRACE_SIGSTOP);
}

/* Tells userspace what it must attach (`kind`: EV_LOAD, the mappings
 * changed; EV_NEED_EXITS, `func` needs its ret sites) and stops the process
 * until userspace has attached it and sends SIGCONT. The signal usually
 * takes effect before the thread's next user instruction, but on 6.18 it
 * was seen to land a few instructions (the next trap) later, so nothing may
 * depend on it landing at once. What the thread queued goes first, so its
 * events stay in order. */
static __always_inline void stop_for_userspace(struct thread_state *s, __u8 kind, __u32 func)
{
	struct {
		struct batch_head head;
		struct event ev;
	} *r;
	__u64 id = bpf_get_current_pid_tgid();

	if (paused) /* nobody attaches anything any more */
		return;
	if (s)
		flush(s);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	/* Without the event nobody would resume the process: then run on,
	 * and what was mapped is attached late. */
	if (!r) {
		count_drops(DROP_RINGBUF, 1);
		return;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->head.pid = id >> 32;
	r->head.tid = (__u32)id;
	r->ev.ts = bpf_ktime_get_ns();
	r->ev.kind = kind;
	r->ev.func = func;
	bpf_ringbuf_submit(r, BPF_RB_FORCE_WAKEUP);
	request_stop();
}

/* The state of `task`, the current thread, if it has one and no uprobe
 * program is in the middle of writing it (see thread_state.busy). Never
 * creates one: only a traced call does. */
static __always_inline struct thread_state *idle_state(struct task_struct *task)
{
	struct thread_state *s = bpf_task_storage_get(&threads, task, 0, 0);

	return s && !s->busy ? s : NULL;
}

/* -A/-R: sends a call's values (defined in values.bpf.inc). */
static __always_inline void send_values(struct pt_regs *regs, struct thread_state *s, __u32 func,
					__u32 depth, __u64 ts, bool at_exit, bool tail, bool sleepable);

/* Sends the system call `s` holds (defined with the syscall programs). */
static __always_inline void end_syscall(struct thread_state *s, __s64 ret, __u64 now, __u8 flags);

/* Counting mode (defined with the return programs). */
static __always_inline void count_call(struct thread_state *s, __u32 d, __u64 now, bool running);
static __always_inline void count_frames(struct thread_state *s, __u32 low, __u32 top, __u64 now,
					bool running);
static __always_inline void count_deep_entry(struct thread_state *s, __u32 func, __u32 d, __u64 now);
static __always_inline void count_open_calls(struct thread_state *s, __u64 now, bool running);

/* --io: gives the bytes `task` read and wrote since the last time to its
 * current call (defined with the I/O programs). */
static __always_inline void io_settle(struct thread_state *s, struct task_struct *task);

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;
	bool thread = ptgid == ctgid;
	__u8 one = 1;

	if (!bpf_map_lookup_elem(&procs, &ptgid))
		return 0;
	/* A new thread shares its parent's tgid: only new processes join. */
	if (follow_forks && !thread) {
		bpf_map_update_elem(&procs, &ctgid, &one, BPF_ANY);
		mark_traced(ctgid);
	}
	if (trace_syscalls && (thread || follow_forks))
		adopt(child);
	return 0;
}

/* A followed process exec'd a new program: stop it before the program's
 * first instruction so userspace can attach the new executable (EV_LOAD:
 * the process's mappings changed). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *task, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = task->tgid;
	bool started = bpf_map_delete_elem(&before_exec, &tgid) == 0;
	bool followed = bpf_map_lookup_elem(&procs, &tgid) != NULL;
	struct thread_state *s;
	__u64 now = bpf_ktime_get_ns();

	/* The command utrace started is traced from here on. */
	if (trace_syscalls && (started || followed))
		adopt(task);
	s = idle_state(task);
	/* execve returns in the new program: it ends here, under its caller. */
	if (s && s->in_syscall)
		end_syscall(s, 0, now, 0);
	/* The bytes the kernel read loading the new program are execve's. */
	if (s && trace_io)
		io_settle(s, task);
	if (!follow_forks || !followed)
		return 0;
	/* The old program's frames (execve's caller) are gone with it. */
	if (s && s->depth && !count_only)
		emit(s, EV_GONE, 0, now, 0);
	if (s && count_only)
		count_open_calls(s, now, false);
	stop_for_userspace(s, EV_LOAD, 0);
	if (s) {
		/* A thread that was not the leader now has its tid. */
		set_depth(s, 0);
		s->emitted = 0;
		s->hijacked = 0;
		s->abandoned_ts = 0;
		s->unwinding = 0;
		s->out.head.pid = task->tgid;
		s->out.head.tid = task->pid;
	}
	return 0;
}

/* Every thread's exit, before its parent can reap it: what it queued is
 * in the ring buffer by the time utrace learns the command ended. */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_thread_exit, struct task_struct *task)
{
	struct thread_state *s = idle_state(task);
	__u32 tgid = task->tgid;

	if (s) {
		/* exit(), exit_group(), or killed inside a system call. */
		if (s->in_syscall)
			end_syscall(s, 0, bpf_ktime_get_ns(), SYSF_NO_RETURN);
		if (trace_io)
			io_settle(s, task);
		/* Calls still open never return: exit(), pthread_exit(). */
		if (s->depth && !count_only && !paused)
			emit(s, EV_GONE, 0, bpf_ktime_get_ns(), 0);
		/* After the run, as the report closes them: still running. */
		if (count_only)
			count_open_calls(s, bpf_ktime_get_ns(), paused);
		set_depth(s, 0);
		flush(s);
	}
	/* The group leader leaving ends the process. */
	if (task->pid == tgid)
		bpf_map_delete_elem(&procs, &tgid);
	return 0;
}

/* A thread that blocks sends what it queued: a call it is waiting in shows
 * at once. Not when it was preempted inside a uprobe program (busy). */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_switch, bool preempt, struct task_struct *prev)
{
	/* prev is still current here: the switch happens after this. */
	struct thread_state *s = idle_state(prev);

	if (s && s->queued)
		flush(s);
	return 0;
}

/* Run once after detach: sends whatever threads still queue (after -p, the
 * process runs on). */
SEC("iter/task")
int flush_all(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct thread_state *s;

	if (!task)
		return 0;
	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s && trace_io)
		io_settle(s, task);
	/* Counting mode: what is still open ends with the run, as the report
	 * ends it (after -p). */
	if (s && count_only)
		count_open_calls(s, bpf_ktime_get_ns(), true);
	if (s)
		flush(s);
	return 0;
}

/* --syscalls -p: run once at attach, after the fork tracepoint is on, so
 * every thread of the process has state before its next system call. */
SEC("iter/task")
int adopt_threads(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	__u32 tgid;

	if (!task)
		return 0;
	tgid = task->tgid;
	if (bpf_map_lookup_elem(&procs, &tgid))
		adopt(task);
	return 0;
}

/* drop_dead_frames_at's walk, frame by frame from the top. */
struct drop_scan {
	struct thread_state *s;
	__u64 sp, abandoned;
	bool at_entry;
	/* A call-return site of `func`'s: a frame at `sp` of another function
	 * is dead. The site was reached with no call returning, as when a
	 * longjmp lands after a setjmp call, or an exception at a landing pad
	 * that follows the call. */
	bool other_dead;
	__u32 func;
	/* A frame dropped was entered after `abandoned` (a cleanup's
	 * _Unwind_Resume): it and the frames below it, which ran that
	 * cleanup, were left now, not when the exception began. */
	bool late;
	/* A frame at `sp` was dropped: the call at that slot returned, and a
	 * frame that tail-jumped there (chained) ended with it. */
	bool slot_returned;
};

static long drop_one(__u64 i, void *ctx)
{
	struct drop_scan *c = ctx;
	struct thread_state *s = c->s;
	__u32 d = s->depth;
	struct frame *f;
	bool keep_same_sp, since, tail;

	if (d == 0 || d > MAX_FRAMES)
		return 1;
	f = frame_at(s, d - 1);
	/* A tail jump's chain shares the callee's slot; a call's does not. */
	tail = f->chained && !f->gap;
	since = c->abandoned && f->ts >= c->abandoned;
	/* Entered since frames were abandoned: alive (a catch's own stub). */
	if (since)
		keep_same_sp = true;
	else
		keep_same_sp = !c->at_entry || ((f->exit == EXIT_HIJACKED || tail) && !c->abandoned);
	if (c->other_dead && f->func != c->func)
		keep_same_sp = false;
	if (tail && c->slot_returned)
		keep_same_sp = false;
	if (f->sp > c->sp || (f->sp == c->sp && keep_same_sp))
		return 1;
	c->slot_returned |= f->sp == c->sp;
	if (f->exit == EXIT_HIJACKED && s->hijacked)
		s->hijacked -= 1;
	c->late |= since;
	if (trace_io)
		io_settle(s, bpf_get_current_task_btf());
	set_depth(s, d - 1);
	return 0;
}

/* Frames whose return was never seen (longjmp, exceptions, a lost
 * return probe) sit below the stack pointer of a live call. Drop every frame
 * whose sp is below `sp` so depth stays exact; userspace closes them (return
 * not seen) when the next event of the thread carries the lower depth, or
 * at once as unwound (EV_UNWIND) when an exception or a longjmp is known to
 * have left them.
 * `at_entry`: a new call enters at `sp`. A frame at that same sp is then the
 * caller of a tail call if its return is hijacked (the returns chain) or its
 * tail jump chained it, but dead if a ret site ended it, or if frames were
 * abandoned since (no tail call crosses a longjmp). */
static __always_inline void drop_scanned(struct thread_state *s, struct drop_scan *scan,
					 __u64 end_ts)
{
	__u64 abandoned = scan->abandoned;
	__u32 before = s->depth;
	__u64 ended;

	/* bpf_loop: an unrolled loop over every frame is more jumps than the
	 * verifier follows. Almost always it stops at the first frame, so that
	 * one is looked at first with a plain call: the helper's own cost was
	 * ~15 ns of a syscall program's ~170 (bpf_stats). */
	if (!drop_one(0, scan))
		bpf_loop(MAX_FRAMES - 1, drop_one, scan, 0);
	/* A longjmp is over once its frames are found; an exception at its catch. */
	if (!s->unwinding)
		s->abandoned_ts = 0;
	/* Almost always none was dropped: no clock read for nothing (a system
	 * call's entry, which lands here with no frame at all, paid one). */
	if (s->depth == before)
		return;
	/* When the dropped frames ended: when the exception or longjmp left
	 * them (or was caught: end_ts), unless they ran code after it. */
	ended = end_ts ? end_ts : abandoned && !scan->late ? abandoned : bpf_ktime_get_ns();
	/* Counting mode: the dropped frames end where the report ends them
	 * (EV_UNWIND's time, else the thread's next event: this one). */
	if (count_only)
		count_frames(s, s->depth, before, ended, false);
	if (s->emitted > s->depth)
		s->emitted = s->depth;
	if (abandoned && !count_only)
		emit(s, EV_UNWIND, 0, ended, s->depth);
}

static __always_inline void drop_dead_frames_at(struct thread_state *s, __u64 sp, bool at_entry,
						__u64 end_ts)
{
	struct drop_scan scan = {
		.s = s, .sp = sp, .abandoned = s->abandoned_ts, .at_entry = at_entry
	};

	drop_scanned(s, &scan, end_ts);
}

static __always_inline void drop_dead_frames(struct thread_state *s, __u64 sp, bool at_entry)
{
	drop_dead_frames_at(s, sp, at_entry, 0);
}

#define COOKIE_RET_SITE (1ULL << COOKIE_RET_SITE_BIT)
#define COOKIE_TAIL_JUMP (1ULL << COOKIE_TAIL_JUMP_BIT)
#define COOKIE_SHORT (1ULL << COOKIE_SHORT_BIT)
#define COOKIE_AT_CALL (1ULL << COOKIE_AT_CALL_BIT)
#define COOKIE_CHAIN (1ULL << COOKIE_CHAIN_BIT)
#define COOKIE_JCC (1ULL << COOKIE_JCC_BIT)
#define COOKIE_JMP_REG (1ULL << COOKIE_JMP_REG_BIT)
#define COOKIE_WITH_CALLER (1ULL << COOKIE_WITH_CALLER_BIT)
#define COOKIE_EARLY (1ULL << COOKIE_EARLY_BIT)
#define COOKIE_INTO_RET (1ULL << COOKIE_INTO_RET_BIT)

/* No function id: settle_jump for an event that enters none. */
#define NO_FUNC 0xffffffffU

static __always_inline void settle_jump(struct pt_regs *regs, struct thread_state *s, __u64 sp,
				       __u32 entering, bool at_call);

/* The stack pointer at the first instruction of the function an entry
 * probe with `cookie` enters: at a call to it (COOKIE_AT_CALL), the return
 * address is not pushed yet. */
static __always_inline __u64 entry_sp(struct pt_regs *regs, __u64 cookie)
{
	return PT_REGS_SP(regs) - (cookie & COOKIE_AT_CALL ? 8 : 0);
}

/* The entry of the function `cookie` names (an entry cookie), seen with
 * `exit` (enum frame_exit). */
static __always_inline void push_frame(struct pt_regs *regs, struct thread_state *s, __u64 cookie,
				       __u8 exit, __u64 now, bool sleepable)
{
	__u64 sp = entry_sp(regs, cookie);
	__u32 func = (__u32)cookie, d;

	settle_jump(regs, s, sp, func, cookie & COOKIE_AT_CALL);
	drop_dead_frames(s, sp, true);
	/* What the thread moved until now was its caller's. */
	if (trace_io)
		io_settle(s, bpf_get_current_task_btf());
	d = s->depth;
	set_depth(s, d + 1);
	if (exit == EXIT_HIJACKED)
		s->hijacked += 1;
	if (d < MAX_FRAMES) {
		struct frame *f = frame_at(s, d);

		f->ts = now;
		f->sp = sp;
		f->child = 0;
		f->func = func;
		f->exit = exit;
		f->chained = !!(cookie & COOKIE_CHAIN);
		f->gap = 0;
		f->with_caller = !!(cookie & COOKIE_WITH_CALLER);
	}
	if (count_only && d < MAX_FRAMES)
		s->open_funcs[func & (OPEN_BUCKETS - 1)] += 1;
	if (count_only && d >= MAX_FRAMES)
		count_deep_entry(s, func, d, now);
	if (d > max_depth || count_only)
		return;
	if (capture_values)
		send_values(regs, s, func, d, now, false, false, sleepable);
	if (min_duration_ns)
		return;
	emit(s, EV_ENTRY, func, now, d);
}

static __always_inline void end_chained(struct pt_regs *regs, struct thread_state *s, __u64 now,
					__u64 sp);

/* The function on top of `s` calls a traced function: mark it in `callers`.
 * The frame on top may be dead yet; marking it errs on the long side. */
static __always_inline void mark_caller(struct thread_state *s)
{
	__u32 d = s->depth, caller;
	__u8 *called;

	if (d == 0 || d > MAX_FRAMES)
		return;
	caller = frame_at(s, d - 1)->func;
	called = bpf_map_lookup_elem(&callers, &caller);
	if (called && !*called)
		*called = 1;
}

/* --exit=auto: a call the kernel cannot hijack the return of (the thread
 * holds HIJACK_BUDGET already, or SHORT_BUDGET for a short call) is seen at
 * its ret sites instead. So is one deeper than the frames BPF keeps: were a
 * longjmp to leave it, nothing would find it dead and give its hijack back.
 * The first time a function needs ret sites, the process stops until they
 * are attached. A function never seen calling a traced one counts as
 * short (`callers`). */
static __always_inline __u8 over_budget(struct thread_state *s, __u32 func, bool short_call)
{
	__u8 asked = EXITS_ASKED, *called;

	if (s->hijacked >= HIJACK_BUDGET && !short_call) {
		called = bpf_map_lookup_elem(&callers, &func);
		short_call = called && !*called;
	}
	if (s->hijacked < (short_call ? SHORT_BUDGET : HIJACK_BUDGET) && s->depth < MAX_FRAMES)
		return EXIT_HIJACKED;
	if (!bpf_map_lookup_elem(&exit_sites, &func) &&
	    !bpf_map_update_elem(&exit_sites, &func, &asked, BPF_NOEXIST))
		stop_for_userspace(s, EV_NEED_EXITS, func);
	return EXIT_RET_SITES;
}

/* A traced function is entered. `hijacks`: the program's return is a
 * session return, which the entry may decline. Returns 1 to decline it
 * (the thread is not traced, or the frame's exit is seen at ret sites). */
static __always_inline int enter(struct pt_regs *ctx, bool hijacks, bool sleepable)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 now = bpf_ktime_get_ns();
	__u8 exit = cookie & COOKIE_RET_SITE ? EXIT_RET_SITES : EXIT_HIJACKED;
	struct thread_state *s;

	if (rate_limited) {
		__u32 func = (__u32)cookie;
		__u8 *mute = bpf_map_lookup_elem(&muted, &func);

		/* No frame, no hijack: its ret sites ignore a frame never seen,
		 * and a frame that tail-jumped here ends now, at its jump. */
		if (mute && *mute) {
			s = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0, 0);
			if (s) {
				claim(s);
				end_chained(ctx, s, now, entry_sp(ctx, cookie));
				release(s);
			}
			return 1;
		}
	}
	s = state_or_create();
	if (!s)
		return 1;
	claim(s);
	if (repair_exits)
		mark_caller(s);
	if (hijacks && repair_exits && exit == EXIT_HIJACKED)
		exit = over_budget(s, (__u32)cookie, cookie & COOKIE_SHORT);
	/* Nothing would end it: its return has no probe. */
	if ((cookie & COOKIE_WITH_CALLER) && s->depth >= MAX_FRAMES) {
		count_drops(DROP_TOO_DEEP, 1);
		release(s);
		return 1;
	}
	push_frame(ctx, s, cookie, exit, now, sleepable);
	release(s);
	return exit == EXIT_HIJACKED ? 0 : 1;
}

SEC("uprobe.multi")
int BPF_UPROBE(on_entry)
{
	enter(ctx, false, false);
	return 0;
}

/* -A: the entry of a function whose arguments are read, sleepable so that
 * a string in a page not mapped yet can be faulted in and read. */
SEC("uprobe.multi.s")
int BPF_UPROBE(on_entry_s)
{
	enter(ctx, false, true);
	return 0;
}

/* emit_held_entries' walk, from the first frame not sent up. */
struct held_scan {
	struct thread_state *s;
	__u32 d;
};

static long emit_held_one(__u64 i, void *ctx)
{
	struct held_scan *c = ctx;
	struct thread_state *s = c->s;
	__u32 k = s->emitted;
	struct frame *f;

	if (k > c->d || k >= MAX_FRAMES)
		return 1;
	f = frame_at(s, k);
	if (k <= max_depth)
		emit(s, EV_ENTRY, f->func, f->ts, k);
	s->emitted = k + 1;
	return 0;
}

/* With a time filter, entries are held back until a call proves long
 * enough; an ancestor of a long call is longer still, so its entry is sent
 * (with its original timestamp) before the child's. */
static __always_inline void emit_held_entries(struct thread_state *s, __u32 d)
{
	struct held_scan scan = { .s = s, .d = d };

	bpf_loop(MAX_FRAMES, emit_held_one, &scan, 0);
}

/* open_below's walk, from the outermost frame. */
struct open_scan {
	struct thread_state *s;
	__u32 func;
	bool found;
};

static long open_one(__u64 i, void *ctx)
{
	struct open_scan *c = ctx;

	if (frame_at(c->s, i)->func == c->func) {
		c->found = true;
		return 1;
	}
	return 0;
}

/* Whether `func` is also open below depth `d`: a recursive function's
 * total counts only its outermost activation (as uftrace does). */
static __always_inline bool open_below(struct thread_state *s, __u32 func, __u32 d)
{
	struct open_scan scan = { .s = s, .func = func };

	/* A bpf_loop the verifier knows runs 0 times leaves its callback
	 * unverified, which 6.18's verifier then fails to JIT: skip it. */
	if (d == 0)
		return false;
	if (d > MAX_FRAMES)
		d = MAX_FRAMES;
	bpf_loop(d, open_one, &scan, 0);
	return scan.found;
}

/* Counting mode: the counts of `func`, numbered after load; NULL (and the
 * call counted as a drop) when `late_counts` is full. */
static __always_inline struct func_counts *late_counts_of(__u32 func)
{
	static const struct func_counts zero;
	struct func_counts *st = bpf_map_lookup_elem(&late_counts, &func);

	if (st)
		return st;
	bpf_map_update_elem(&late_counts, &func, &zero, BPF_NOEXIST);
	st = bpf_map_lookup_elem(&late_counts, &func);
	if (!st)
		count_drops(DROP_UNCOUNTED, 1);
	return st;
}

/* Counting mode: the call in frame `d` ended at `now` (returned, unwound, or
 * its thread ended), counted as the report counts it. A call the report's
 * --max-depth or -t would hide is not counted, and its time stays its
 * caller's own, as there. */
static __always_inline void count_call(struct thread_state *s, __u32 d, __u64 now, bool running)
{
	struct frame *f = frame_at(s, d);
	__u32 func = f->func;
	/* An unwound frame may end at a time stamped before its entry. */
	__u64 dur = now > f->ts ? now - f->ts : 0;
	__u16 *open = &s->open_funcs[func & (OPEN_BUCKETS - 1)];
	bool nested = *open > 1;
	struct func_counts *st;

	if (*open)
		*open -= 1;
	if (d > max_depth || dur < min_duration_ns)
		return;
	if (d > 0)
		frame_at(s, d - 1)->child += dur;
	st = bpf_map_lookup_elem(&counts, &func);
	if (!st)
		st = late_counts_of(func);
	if (!st)
		return;
	st->count += 1;
	st->running += running;
	if (!nested || !open_below(s, func, d))
		st->total_ns += dur;
	st->self_ns += dur > f->child ? dur - f->child : 0;
	st->sum_ns += dur;
	if (!st->min_ns || dur < st->min_ns)
		st->min_ns = dur;
	if (dur > st->max_ns)
		st->max_ns = dur;
}

/* Counting mode: calls deeper than a thread's frames have none to time them
 * by, so their entries and exits go to userspace as events, which pairs and
 * aggregates them as the report does and adds them to these counts. An
 * entry whose function is open in the frames too is marked: its activation
 * is nested, and Total counts only outermost ones. */
static __always_inline void count_deep_entry(struct thread_state *s, __u32 func, __u32 d, __u64 now)
{
	if (d == MAX_FRAMES)
		s->deep_ts = now;
	if (d > max_depth)
		return;
	bool open = s->open_funcs[func & (OPEN_BUCKETS - 1)] && open_below(s, func, MAX_FRAMES);

	emit_flags(s, EV_ENTRY, func, now, d, open ? EVF_NESTED : 0);
}

/* The exit of such a call. The outermost one's time is its caller's
 * callees' time, as count_call() adds it for framed calls. */
static __always_inline void count_deep_exit(struct thread_state *s, __u32 func, __u32 d, __u64 now)
{
	if (d > max_depth)
		return;
	if (d == MAX_FRAMES && now - s->deep_ts >= min_duration_ns)
		frame_at(s, MAX_FRAMES - 1)->child += now - s->deep_ts;
	emit(s, EV_EXIT, func, now, d);
}

/* Counting mode: the thread's open calls end at `now` (it exited, or exec'd),
 * as the report ends them there; `running`: they were still running when
 * the trace ended (detach), and are counted so. Those without a frame are
 * userspace's: left open, its replay ends them with the trace the same way. */
static __always_inline void count_open_calls(struct thread_state *s, __u64 now, bool running)
{
	if (s->depth > MAX_FRAMES) {
		if (!running)
			emit(s, EV_GONE, 0, now, 0);
		if (MAX_FRAMES <= max_depth && now - s->deep_ts >= min_duration_ns)
			frame_at(s, MAX_FRAMES - 1)->child += now - s->deep_ts;
		set_depth(s, MAX_FRAMES);
	}
	count_frames(s, 0, s->depth, now, running);
	set_depth(s, 0);
}

struct count_range {
	struct thread_state *s;
	__u32 low, top;
	__u64 now;
	bool running;
};

static long count_one(__u64 i, void *ctx)
{
	struct count_range *r = ctx;

	if (r->top <= r->low + i)
		return 1;
	count_call(r->s, r->top - 1 - i, r->now, r->running);
	return 0;
}

/* Counts frames low..top-1, innermost first, as ended at `now`. bpf_loop:
 * count_call() scans the frames below, and unrolled loops of loops are
 * more jumps than the verifier follows. */
static __always_inline void count_frames(struct thread_state *s, __u32 low, __u32 top, __u64 now,
					 bool running)
{
	struct count_range r = {
		.s = s, .low = low, .top = top < MAX_FRAMES ? top : MAX_FRAMES, .now = now,
		.running = running,
	};

	if (r.top > low)
		bpf_loop(r.top - low, count_one, &r, 0);
}

/* Ends the call on top of the thread's frames, in frame `d`, at `now`.
 * `hijacked`: its return address was hijacked (it held a kernel return
 * instance); `tail`: seen at a tail jump, where no return value exists yet. */
static __always_inline void end_top(struct pt_regs *regs, struct thread_state *s, __u32 func,
				    __u64 now, __u32 d, bool hijacked, bool tail)
{
	if (hijacked && s->hijacked)
		s->hijacked -= 1;
	if (trace_io)
		io_settle(s, bpf_get_current_task_btf());
	set_depth(s, d);
	if (count_only) {
		if (d < MAX_FRAMES)
			count_call(s, d, now, false);
		else
			count_deep_exit(s, func, d, now);
		return;
	}
	if (d > max_depth)
		return;
	if (d < MAX_FRAMES) {
		/* The frame's own id: a ret site two functions share (identical
		 * code folding) carries only the first one's cookie. */
		func = frame_at(s, d)->func;
		if (min_duration_ns) {
			if (d >= s->emitted && now - frame_at(s, d)->ts < min_duration_ns)
				return;
			emit_held_entries(s, d);
			s->emitted = d;
		}
	} else if (min_duration_ns) {
		/* No entry time to filter on, and its entry was never sent: an
		 * exit alone would pair with nothing. Counted, not silent. */
		count_drops(DROP_UNFILTERED, 1);
		return;
	}
	if (capture_values)
		send_values(regs, s, func, d, now, true, tail, false);
	emit(s, EV_EXIT, func, now, d);
}

/* The thread's first traced event at `sp` since a chaining tail jump
 * (jump_ts), `entering` a function (or NO_FUNC), probed at a call to it
 * (`at_call`) or at its own entry. The jump reached a traced function if
 * this is that function's entry, at the jumping frame's slot, which still
 * holds the return address it had. It went to code not traced (a pointer's
 * target: a library's virtual function) if the frame is dead: the event is
 * above it, or its slot holds another call's return address (or is about
 * to: a call at that slot, or the same function entered there again, from
 * the same call site in a loop). Then the frame ended at the jump, as a
 * tail jump to code not traced ends one, its return value unknown. Else
 * (code the jump reached runs, or returned to this frame's own call return)
 * it stays open. Either way the question is settled. */
static __always_inline void settle_jump(struct pt_regs *regs, struct thread_state *s, __u64 sp,
				       __u32 entering, bool at_call)
{
	__u32 d = s->jump_depth;
	__u64 ts = s->jump_ts, slot;
	struct frame *top;
	bool dead, again;

	if (!ts)
		return;
	s->jump_ts = 0;
	if (d != s->depth || d == 0 || d > MAX_FRAMES || s->abandoned_ts)
		return;
	top = frame_at(s, d - 1);
	if (!top->chained)
		return;
	if (top->sp < sp || (top->sp == sp && at_call)) {
		dead = true;
	} else {
		if (bpf_probe_read_user(&slot, sizeof(slot), (void *)top->sp))
			return;
		again = top->sp == sp && entering == top->func;
		/* Unless the jump went there: the function's entry, a few bytes
		 * before this probe (which may sit past its first instructions).
		 * It is a tail call of itself through a pointer, no new call. */
		if (again && !at_call && s->jump_target && PT_REGS_IP(regs) >= s->jump_target &&
		    PT_REGS_IP(regs) - s->jump_target <= ENTRY_SLACK)
			again = false;
		dead = slot != s->jump_ret || again;
	}
	if (dead)
		end_top(regs, s, top->func, ts, d - 1, false, true);
}

struct chain_end {
	struct pt_regs *regs;
	struct thread_state *s;
	__u64 now, sp;
};

/* The thread's top frame if a tail jump chained it on slot `sp`, or a call
 * returning into its epilogue did, with the callee on slot `sp`. */
static __always_inline struct frame *chained_top(struct thread_state *s, __u64 sp)
{
	__u32 d = s->depth;
	struct frame *top;

	if (d == 0 || d > MAX_FRAMES)
		return NULL;
	top = frame_at(s, d - 1);
	return top->chained && top->sp == sp + top->gap * 8 ? top : NULL;
}

static long end_chained_one(__u64 i, void *ctx)
{
	struct chain_end *c = ctx;
	struct frame *top = chained_top(c->s, c->sp);

	if (!top)
		return 1;
	end_top(c->regs, c->s, top->func, c->now, c->s->depth - 1, false, false);
	return 0;
}

/* The call at slot `sp` returned: the frames whose tail jumps chained them
 * there end with it, innermost first, at the same time and with the same
 * return value. Every one BPF keeps: a function tail-calling itself, or an
 * interpreter's handlers tail-calling each other, chain as deep as they go.
 * bpf_loop: end_top is too long to unroll that often. */
static __always_inline void end_chained(struct pt_regs *regs, struct thread_state *s, __u64 now,
					__u64 sp)
{
	struct chain_end c = { .regs = regs, .s = s, .now = now, .sp = sp };

	/* The common case, no chained frame on top: no loop at all. */
	if (chained_top(s, sp))
		bpf_loop(MAX_FRAMES, end_chained_one, &c, 0);
}

/* end_tail_callees' walk down the frames at one slot, from the second. */
struct jumper_scan {
	struct thread_state *s;
	__u64 sp;
	__u32 func, below, above;
};

static long find_jumper_one(__u64 i, void *ctx)
{
	struct jumper_scan *c = ctx;
	__u32 d = c->s->depth, k = ++c->below;
	struct frame *f;

	if (d <= k || d - 1 - k >= MAX_FRAMES)
		return 1;
	f = frame_at(c->s, d - 1 - k);
	if (f->sp != c->sp)
		return 1;
	if (f->func != c->func)
		return 0;
	if (f->chained && !f->gap)
		c->above = k;
	return 1;
}

static long end_callee_one(__u64 i, void *ctx)
{
	struct chain_end *c = ctx;
	__u32 d = c->s->depth;
	struct frame *top;

	if (d == 0 || d > MAX_FRAMES)
		return 1;
	top = frame_at(c->s, d - 1);
	if (top->sp != c->sp)
		return 1;
	end_top(c->regs, c->s, top->func, c->now, d - 1, top->exit == EXIT_HIJACKED, false);
	return 0;
}

/* A call-return site of `func`, whose frame at slot `sp` chained (from its
 * entry, COOKIE_CHAIN, or at a tail jump): the calls it tail-jumped to that
 * are still open above it at that slot (a library function whose own return
 * no probe sees, and what that jumped to in turn) returned here with it,
 * innermost first, however many. Not while an exception or a longjmp is
 * abandoning frames: those left without returning. bpf_loop, as for
 * end_chained; almost always the frame below the top is at another slot,
 * which the first look, a plain call, finds. */
static __always_inline void end_tail_callees(struct pt_regs *regs, struct thread_state *s,
					     __u32 func, __u64 now, __u64 sp)
{
	struct jumper_scan scan = { .s = s, .sp = sp, .func = func };
	struct chain_end c = { .regs = regs, .s = s, .now = now, .sp = sp };

	if (s->abandoned_ts)
		return;
	if (!find_jumper_one(0, &scan))
		bpf_loop(MAX_FRAMES, find_jumper_one, &scan, 0);
	if (scan.above)
		bpf_loop(scan.above, end_callee_one, &c, 0);
}

/* A traced function returns; `entry_sp` is the sp its entry saw, `exit`
 * how this probe sees returns (a hijacked return, or a ret site): a frame
 * whose exit is seen the other way ignores it, unless its tail jump chained
 * it (the call it jumped to left no frame: this is that call's return).
 * With `same_func`, the frame must also be the cookie's function: a
 * call-return site is reached with no call returning when a longjmp lands
 * after a setjmp call, or an exception at a landing pad right after the
 * call, where a sibling call (the frame abandoned) sat at the same sp. */
/* A function returns at `sp`: the call to a stub on top (COOKIE_WITH_CALLER),
 * which returned into that function's `ret` with no probe, ends now too. */
static __always_inline void end_with_caller(struct pt_regs *regs, struct thread_state *s,
					    __u64 now, __u64 sp)
{
	__u32 d = s->depth;
	struct frame *top;

	if (d == 0 || d > MAX_FRAMES)
		return;
	top = frame_at(s, d - 1);
	if (top->with_caller && top->sp < sp)
		end_top(regs, s, top->func, now, d - 1, false, false);
}

static __always_inline void pop_frame(struct pt_regs *regs, struct thread_state *s, __u32 func,
				      __u64 now, __u64 entry_sp, bool same_func, __u8 exit)
{
	bool hijacked = exit == EXIT_HIJACKED;
	struct drop_scan scan = {
		.s = s, .sp = entry_sp, .abandoned = s->abandoned_ts,
		.other_dead = same_func, .func = func,
	};
	__u32 d;

	settle_jump(regs, s, entry_sp, NO_FUNC, false);
	end_with_caller(regs, s, now, entry_sp);
	if (same_func)
		end_tail_callees(regs, s, func, now, entry_sp);
	/* With the frames an exception or a longjmp left, in one scan: a
	 * frame that ran a cleanup before its pad's sibling landed here ends
	 * with the cleanup's frames. */
	drop_scanned(s, &scan, 0);
	d = s->depth;
	if (d == 0)
		return;
	if (d <= MAX_FRAMES) {
		struct frame *top = frame_at(s, d - 1);

		/* A return whose entry we never saw: entered before attach, or a
		 * ret site of an untraced frame deeper than ours. */
		if (top->sp != entry_sp)
			return;
		if (top->exit != exit && !top->chained)
			return;
		hijacked = top->exit == EXIT_HIJACKED;
	}
	end_top(regs, s, func, now, d - 1, hijacked, bpf_get_attach_cookie(regs) & COOKIE_TAIL_JUMP);
	end_chained(regs, s, now, entry_sp);
}

/* The value of x86 register `reg` (0 rax … 15 r15) in `regs`: loaded at
 * fixed offsets, as the verifier refuses a context read at a computed one. */
static __always_inline __u64 reg_value(struct pt_regs *regs, __u32 reg)
{
	__u64 r[16] = { regs->ax, regs->cx, regs->dx, regs->bx, regs->sp, regs->bp,
			regs->si, regs->di, regs->r8, regs->r9, regs->r10, regs->r11,
			regs->r12, regs->r13, regs->r14, regs->r15 };

	return r[reg & 15];
}

/* A chaining tail jump (COOKIE_CHAIN) of the frame at `sp`: it stays open,
 * to end with the call it jumps to. False when that frame is deeper than
 * BPF keeps: nothing can mark it, so the jump ends it as a ret site does. */
static __always_inline bool chain_frame(struct pt_regs *regs, struct thread_state *s, __u64 sp,
					__u64 cookie)
{
	struct frame *top;
	__u32 d;

	settle_jump(regs, s, sp, NO_FUNC, false);
	drop_dead_frames(s, sp, false);
	d = s->depth;
	if (d == 0)
		return true;
	if (d > MAX_FRAMES)
		return false;
	top = frame_at(s, d - 1);
	if (top->sp == sp && top->exit == EXIT_RET_SITES) {
		top->chained = 1;
		if (!bpf_probe_read_user(&s->jump_ret, sizeof(s->jump_ret), (void *)sp)) {
			s->jump_ts = bpf_ktime_get_ns();
			s->jump_depth = d;
			s->jump_target = cookie & COOKIE_JMP_REG ?
				reg_value(regs, (cookie >> COOKIE_REG_SHIFT) & 0xf) : 0;
		}
	}
	return true;
}

static __always_inline int on_return(struct pt_regs *ctx, __u64 entry_sp, bool same_func, __u8 exit)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 now = bpf_ktime_get_ns();
	struct thread_state *s = state_or_create();

	if (s) {
		claim(s);
		pop_frame(ctx, s, (__u32)cookie, now, entry_sp, same_func, exit);
		release(s);
	}
	return 0;
}

/* A uretprobe's return, or (cookie flag) a plain probe after a call to a
 * PLT stub whose frame's exit is seen there. */
SEC("uretprobe.multi")
int BPF_URETPROBE(on_exit)
{
	__u8 exit = bpf_get_attach_cookie(ctx) & COOKIE_RET_SITE ? EXIT_RET_SITES : EXIT_HIJACKED;

	/* After `ret` the stack pointer is one slot above the entry's. */
	return on_return(ctx, PT_REGS_SP(ctx) - 8, true, exit);
}

/* Whether the conditional jump with x86 condition code `cc` is taken under
 * `flags` (EFLAGS as the probe found them, before the jump). Odd codes are
 * the even ones negated. */
static __always_inline bool jcc_taken(__u64 flags, __u32 cc)
{
	bool cf = flags & 0x1, pf = flags & 0x4, zf = flags & 0x40, sf = flags & 0x80;
	bool of = flags & 0x800;
	bool yes;

	switch (cc >> 1) {
	case 0: yes = of; break;			/* jo */
	case 1: yes = cf; break;			/* jb */
	case 2: yes = zf; break;			/* je */
	case 3: yes = cf || zf; break;			/* jbe */
	case 4: yes = sf; break;			/* js */
	case 5: yes = pf; break;			/* jp */
	case 6: yes = sf != of; break;			/* jl */
	default: yes = zf || sf != of; break;		/* jle */
	}
	return cc & 1 ? !yes : yes;
}

/* A call of `func` to a traced function, returning into the epilogue of
 * the frame at slot `sp`, `gap` slots above the callee's: that frame ends
 * when the callee's does (end_chained). A frame deeper than BPF keeps
 * cannot be marked, nor may one be under --max-rate (the callee may be
 * muted and its probes taken away): then the process stops, once, until
 * the `ret`s these calls stood for are attached. */
static __always_inline void chain_call(struct pt_regs *regs, struct thread_state *s, __u32 func,
				       __u64 sp, __u8 gap)
{
	__u8 asked = EXITS_RETS_ASKED, *v;
	struct frame *top;
	__u32 d;

	settle_jump(regs, s, sp, NO_FUNC, false);
	d = s->depth;
	if (d == 0)
		return;
	if (d > MAX_FRAMES || rate_limited) {
		v = bpf_map_lookup_elem(&exit_sites, &func);
		if (!v || *v < EXITS_RETS_ASKED) {
			bpf_map_update_elem(&exit_sites, &func, &asked, BPF_ANY);
			stop_for_userspace(s, EV_NEED_RETS, func);
		}
		return;
	}
	top = frame_at(s, d - 1);
	if (top->sp == sp && top->func == func && top->exit == EXIT_RET_SITES) {
		top->chained = 1;
		top->gap = gap;
	}
}

/* Attached at `ret` and tail-jump instructions, where the return address
 * is still on top of the stack, exactly where the entry saw it; or at a
 * branch into an epilogue (COOKIE_EARLY), a few pops below it. */
SEC("uprobe.multi")
int BPF_UPROBE(on_ret_site)
{
	__u64 cookie = bpf_get_attach_cookie(ctx);
	__u64 sp = PT_REGS_SP(ctx), slots;
	struct thread_state *s;

	/* A conditional tail call not taken, or a conditional branch that does
	 * not go into the epilogue: the function goes on. */
	if ((cookie & COOKIE_JCC) && !jcc_taken(ctx->flags, (cookie >> COOKIE_CC_SHIFT) & 0xf))
		return 0;
	slots = (cookie >> COOKIE_SLOTS_SHIFT) & 0xff;
	/* A call returning into the epilogue: no return yet. */
	if (cookie & COOKIE_INTO_RET) {
		s = state_or_create();
		if (!s)
			return 0;
		claim(s);
		/* The callee's slot is the one below the return address. */
		chain_call(ctx, s, (__u32)cookie, sp + slots * 8, slots + 1);
		release(s);
		return 0;
	}
	/* A branch into an epilogue: its `ret` is a few pops above. */
	if (cookie & COOKIE_EARLY)
		return on_return(ctx, sp + slots * 8, false, EXIT_RET_SITES);
	if (!(cookie & COOKIE_CHAIN))
		return on_return(ctx, sp, false, EXIT_RET_SITES);
	s = state_or_create();
	if (!s)
		return 0;
	claim(s);
	if (!chain_frame(ctx, s, PT_REGS_SP(ctx), cookie))
		pop_frame(ctx, s, (__u32)cookie, bpf_ktime_get_ns(), PT_REGS_SP(ctx),
			  false, EXIT_RET_SITES);
	release(s);
	return 0;
}

extern bool bpf_session_is_return(void) __ksym;

/* Entry and return in one program (--exit=session): the kernel hijacks
 * the return address as for a uretprobe, but only for calls the entry
 * accepted (returning 0), and runs one consumer instead of two. */
SEC("uprobe.session")
int BPF_UPROBE(on_session)
{
	if (bpf_session_is_return())
		return on_return(ctx, PT_REGS_SP(ctx) - 8, true, EXIT_HIJACKED);
	return enter(ctx, true, false);
}

/* -A: on_session for functions whose arguments are read (see on_entry_s). */
SEC("uprobe.session.s")
int BPF_UPROBE(on_session_s)
{
	if (bpf_session_is_return())
		return on_return(ctx, PT_REGS_SP(ctx) - 8, true, EXIT_HIJACKED);
	return enter(ctx, true, true);
}

/* --exit=auto: the unwinder and longjmp, by cookie (enum helper_kind). */
SEC("uprobe.multi")
int BPF_UPROBE(on_helper)
{
	struct thread_state *s = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0, 0);
	__u64 kind = bpf_get_attach_cookie(ctx);
	__u64 now = bpf_ktime_get_ns();

	if (!s || paused)
		return 0;
	claim(s);
	settle_jump(ctx, s, PT_REGS_SP(ctx), NO_FUNC, false);
	switch (kind) {
	case HELPER_UNWIND_START:
		if (!s->unwinding)
			s->abandoned_ts = now;
		s->unwinding = 1;
		break;
	case HELPER_CATCH:
		/* The catch runs in the catching frame: what the exception left
		 * below it is gone (a frame entered since, at the same slot, is
		 * the catch's own: the PLT stub that jumped here). */
		if (!s->abandoned_ts)
			s->abandoned_ts = now;
		s->unwinding = 0;
		drop_dead_frames_at(s, PT_REGS_SP(ctx), true, now);
		break;
	case HELPER_FREED:
		/* A frame at this very slot is the call that freed it. */
		if (!s->abandoned_ts)
			s->abandoned_ts = now;
		s->unwinding = 0;
		drop_dead_frames_at(s, PT_REGS_SP(ctx), false, now);
		break;
	case HELPER_LONGJMP:
		s->abandoned_ts = now;
		break;
	}
	release(s);
	return 0;
}

/* On the loader's _dl_debug_state(), which glibc calls before and after
 * every change of the link map: a library dlopen just mapped is attached
 * before any of its code runs. */
SEC("uprobe")
int BPF_UPROBE(on_loader)
{
	struct thread_state *s = bpf_task_storage_get(&threads, bpf_get_current_task_btf(), 0, 0);

	if (s)
		claim(s);
	stop_for_userspace(s, EV_LOAD, 0);
	if (s)
		release(s);
	return 0;
}

/* The kernel's own events, in files of their own: system calls, then the
 * I/O below them; then -A/-R's values. They use the thread state and queues
 * above. */
#include "syscalls.bpf.inc"
#include "io.bpf.inc"
#include "values.bpf.inc"
