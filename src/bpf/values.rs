//! `-A`/`-R` from userspace: each function's value spec in the form BPF
//! reads it (bpf/values.bpf.inc), and the records it sends back decoded
//! into values in the spec's order.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use super::Probes;
use super::abi::{
    LATE_VALUES_MAX, RawValueSlot, RawValueSpec, RawValues, VALUE_STR_MAX, VALUES_MAX, plain_bytes,
    value_flags, value_source,
};
use crate::model::FuncId;
use crate::util::diag::warning;
use crate::values::{FuncValues, Slot, Value, ValueSpec};

impl Probes<'_> {
    /// Fills BPF's spec table, before the entries it describes are attached
    /// (those that read arguments get the sleepable program). Ids past its
    /// size (functions numbered after load, past its LATE_VALUES_MAX spare
    /// slots) are left out, and said so.
    pub fn set_values(&mut self, values: &BTreeMap<FuncId, FuncValues>) -> Result<()> {
        let map = &self.skel.maps.value_specs;
        let slots = map.info()?.info.max_entries;
        let mut full = 0;
        for (id, v) in values {
            if id.0 >= slots {
                full += 1;
                continue;
            }
            let spec = raw_spec(v);
            map.update(&id.0.to_ne_bytes(), plain_bytes(&spec), MapFlags::ANY)
                .context("filling the -A/-R table")?;
            if !v.args.is_empty() {
                self.with_args.insert(*id);
            }
        }
        if full > 0 {
            warning!(
                "the values of {full} functions loaded after the start are not read: BPF's table \
                 holds the first {LATE_VALUES_MAX} loaded later (trace fewer libraries with --nest-lib)"
            );
        }
        Ok(())
    }
}

fn raw_spec(v: &FuncValues) -> RawValueSpec {
    let mut spec = RawValueSpec::default();
    let args = v.args.iter().take(VALUES_MAX);
    for (slot, arg) in spec.args.iter_mut().zip(args) {
        *slot = raw_slot(arg);
    }
    spec.nargs = v.args.len().min(VALUES_MAX) as u8;
    if let Some(ret) = &v.ret {
        spec.ret = raw_slot(ret);
        spec.has_ret = 1;
    }
    spec
}

fn raw_slot(v: &ValueSpec) -> RawValueSlot {
    let mut slot = RawValueSlot::default();
    let (source, index, offset) = match v.slot {
        Slot::Reg(i) if i < 6 => (value_source::VAL_REG, i, 0),
        Slot::Ret(i) if i < 2 => (value_source::VAL_REG, 6 + i, 0),
        Slot::Stack(offset) => (value_source::VAL_STACK, 0, offset),
        _ => (value_source::VAL_NONE, 0, 0),
    };
    slot.source = source.0 as u8;
    slot.index = index;
    slot.offset = offset;
    slot.string = u8::from(v.format == crate::values::Format::Str);
    slot
}

/// The values of one record: its fixed part and the strings after it.
pub fn decode(raw: &RawValues, data: &[u8]) -> Vec<Value> {
    let count = usize::from(raw.count).min(VALUES_MAX);
    let mut at = 0usize;
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let flags = raw.flags[i];
        let has = |f: value_flags| flags & f.0 as u8 != 0;
        let word = raw.words[i];
        if has(value_flags::VALF_TAIL) || !has(value_flags::VALF_READ) {
            out.push(Value::Missing);
            continue;
        }
        if !has(value_flags::VALF_STRING) {
            out.push(Value::Word(word));
            continue;
        }
        let bytes = has(value_flags::VALF_TEXT).then(|| {
            let len = usize::from(raw.len[i]).min(VALUE_STR_MAX);
            let bytes = data.get(at..at + len).unwrap_or_default().to_vec();
            at += len;
            bytes
        });
        out.push(Value::Text {
            addr: word,
            bytes: bytes.filter(|_| word != 0),
            cut: has(value_flags::VALF_CUT),
        });
    }
    out
}
