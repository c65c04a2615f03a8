//! A small reader for the pickle programs `torch.save` writes (protocol 2, as used by the
//! official checkpoints), enough for `{model, ema, optimizer, step}`: dicts keep their order,
//! lists are kept (burn-store drops them), tensors are resolved to their zip storages, and
//! anything else (numpy scalars in the optimizer state, module metadata) is kept opaque.

use std::collections::HashMap;

/// A tensor reference: storage key and dtype, offset, size and stride (in elements).
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRef {
    /// Storage key (`data/<key>` in the zip).
    pub key: String,
    /// Storage type name (`FloatStorage`, `DoubleStorage`, …).
    pub storage: String,
    /// Offset in elements.
    pub offset: usize,
    /// Shape.
    pub size: Vec<usize>,
    /// Strides in elements.
    pub stride: Vec<usize>,
}

/// A decoded pickle value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `None`.
    None,
    /// Boolean.
    Bool(bool),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// String.
    Str(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Tuple.
    Tuple(Vec<Value>),
    /// List.
    List(Vec<Value>),
    /// Dict, in insertion order.
    Dict(Vec<(Value, Value)>),
    /// A global (`module.name`).
    Global(String, String),
    /// An object built by an unknown callable (kept opaque).
    Object(Box<Value>, Box<Value>),
    /// A persistent id (torch storages).
    PersId(Box<Value>),
    /// A tensor.
    Tensor(TensorRef),
}

impl Value {
    /// Looks up a string key of a dict.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }
}

fn as_usize_vec(v: &Value) -> Option<Vec<usize>> {
    match v {
        Value::Tuple(t) | Value::List(t) => t
            .iter()
            .map(|x| match x {
                Value::Int(i) if *i >= 0 => Some(*i as usize),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// Builds a value from a `REDUCE` of `callable(*args)`.
fn reduce(callable: Value, args: Value) -> Result<Value, String> {
    let Value::Global(m, n) = &callable else {
        return Ok(Value::Object(Box::new(callable), Box::new(args)));
    };
    let items = match &args {
        Value::Tuple(t) => t.clone(),
        _ => Vec::new(),
    };
    match (m.as_str(), n.as_str()) {
        ("collections", "OrderedDict") => Ok(Value::Dict(Vec::new())),
        ("torch._utils", "_rebuild_tensor_v2") | ("torch._utils", "_rebuild_tensor") => {
            // (storage, storage_offset, size, stride, …)
            let Some(Value::PersId(pid)) = items.first() else {
                return Err("tensor without a storage".into());
            };
            let Value::Tuple(p) = pid.as_ref() else {
                return Err("storage id is not a tuple".into());
            };
            // ('storage', storage_type, key, location, numel)
            let storage = match p.get(1) {
                Some(Value::Global(_, name)) => name.clone(),
                _ => return Err("storage type missing".into()),
            };
            let key = match p.get(2) {
                Some(Value::Str(s)) => s.clone(),
                _ => return Err("storage key missing".into()),
            };
            let offset = match items.get(1) {
                Some(Value::Int(o)) if *o >= 0 => *o as usize,
                _ => return Err("storage offset missing".into()),
            };
            let size = items
                .get(2)
                .and_then(as_usize_vec)
                .ok_or("tensor size missing")?;
            let stride = items
                .get(3)
                .and_then(as_usize_vec)
                .ok_or("tensor stride missing")?;
            Ok(Value::Tensor(TensorRef {
                key,
                storage,
                offset,
                size,
                stride,
            }))
        }
        // (tensor, requires_grad, backward_hooks)
        ("torch._utils", "_rebuild_parameter") => items
            .into_iter()
            .next()
            .ok_or_else(|| "empty _rebuild_parameter".to_string()),
        _ => Ok(Value::Object(Box::new(callable), Box::new(args))),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if self.pos + n > self.b.len() {
            return Err("truncated pickle".into());
        }
        let s = &self.b[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<usize, String> {
        let s = self.take(2)?;
        Ok(u16::from_le_bytes([s[0], s[1]]) as usize)
    }
    fn u32(&mut self) -> Result<usize, String> {
        let s = self.take(4)?;
        Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    fn line(&mut self) -> Result<String, String> {
        let start = self.pos;
        while self.pos < self.b.len() && self.b[self.pos] != b'\n' {
            self.pos += 1;
        }
        let s = String::from_utf8_lossy(&self.b[start..self.pos]).into_owned();
        self.pos += 1;
        Ok(s)
    }
}

/// Parses a pickle program into a [`Value`].
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut stack: Vec<Value> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<usize, Value> = HashMap::new();
    let pop = |s: &mut Vec<Value>| s.pop().ok_or_else(|| "pickle stack underflow".to_string());
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.take(8)?; // FRAME
            }
            b'.' => return pop(&mut stack),  // STOP
            b'(' => marks.push(stack.len()), // MARK
            b'}' => stack.push(Value::Dict(Vec::new())),
            b']' => stack.push(Value::List(Vec::new())),
            b')' => stack.push(Value::Tuple(Vec::new())),
            b'N' => stack.push(Value::None),
            0x88 => stack.push(Value::Bool(true)),
            0x89 => stack.push(Value::Bool(false)),
            b'J' => {
                let s = r.take(4)?;
                stack.push(Value::Int(
                    i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64
                ));
            }
            b'K' => {
                let v = r.u8()?;
                stack.push(Value::Int(v as i64));
            }
            b'M' => {
                let v = r.u16()?;
                stack.push(Value::Int(v as i64));
            }
            0x8a => {
                // LONG1
                let n = r.u8()? as usize;
                let s = r.take(n)?;
                let mut v: i64 = 0;
                for (i, &byte) in s.iter().enumerate().take(8) {
                    v |= (byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && s[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Value::Int(v));
            }
            b'G' => {
                let s = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                stack.push(Value::Float(f64::from_be_bytes(a)));
            }
            b'X' | 0x8c | 0x8d => {
                // BINUNICODE / SHORT_BINUNICODE / BINUNICODE8
                let n = match op {
                    b'X' => r.u32()?,
                    0x8c => r.u8()? as usize,
                    _ => {
                        let s = r.take(8)?;
                        u64::from_le_bytes(s.try_into().map_err(|_| "bad length")?) as usize
                    }
                };
                let s = r.take(n)?;
                stack.push(Value::Str(String::from_utf8_lossy(s).into_owned()));
            }
            b'B' | b'C' | 0x8e => {
                // BINBYTES / SHORT_BINBYTES / BINBYTES8
                let n = match op {
                    b'B' => r.u32()?,
                    b'C' => r.u8()? as usize,
                    _ => {
                        let s = r.take(8)?;
                        u64::from_le_bytes(s.try_into().map_err(|_| "bad length")?) as usize
                    }
                };
                let s = r.take(n)?.to_vec();
                stack.push(Value::Bytes(s));
            }
            b'c' => {
                // GLOBAL module\nname\n
                let m = r.line()?;
                let n = r.line()?;
                stack.push(Value::Global(m, n));
            }
            0x93 => {
                // STACK_GLOBAL
                let n = pop(&mut stack)?;
                let m = pop(&mut stack)?;
                match (m, n) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Value::Global(m, n)),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'q' => {
                let i = r.u8()? as usize;
                memo.insert(i, stack.last().cloned().ok_or("memo of empty stack")?);
            }
            b'r' => {
                let i = r.u32()?;
                memo.insert(i, stack.last().cloned().ok_or("memo of empty stack")?);
            }
            0x94 => {
                // MEMOIZE
                let i = memo.len();
                memo.insert(i, stack.last().cloned().ok_or("memo of empty stack")?);
            }
            b'h' | b'j' => {
                let i = if op == b'h' {
                    r.u8()? as usize
                } else {
                    r.u32()?
                };
                stack.push(memo.get(&i).cloned().ok_or("unknown memo index")?);
            }
            b'Q' => {
                // BINPERSID
                let pid = pop(&mut stack)?;
                stack.push(Value::PersId(Box::new(pid)));
            }
            b'R' => {
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                stack.push(reduce(callable, args)?);
            }
            0x81 => {
                // NEWOBJ cls.__new__(cls, *args)
                let args = pop(&mut stack)?;
                let cls = pop(&mut stack)?;
                stack.push(reduce(cls, args)?);
            }
            b'b' => {
                // BUILD: the state (e.g. a state dict's `_metadata`) is not needed
                pop(&mut stack)?;
            }
            b't' | 0x85 | 0x86 | 0x87 => {
                let items = match op {
                    b't' => {
                        let m = marks.pop().ok_or("TUPLE without MARK")?;
                        stack.split_off(m)
                    }
                    0x85 => vec![pop(&mut stack)?],
                    0x86 => {
                        let b = pop(&mut stack)?;
                        vec![pop(&mut stack)?, b]
                    }
                    _ => {
                        let c = pop(&mut stack)?;
                        let b = pop(&mut stack)?;
                        vec![pop(&mut stack)?, b, c]
                    }
                };
                stack.push(Value::Tuple(items));
            }
            b's' => {
                let v = pop(&mut stack)?;
                let k = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::Dict(d)) => d.push((k, v)),
                    _ => return Err("SETITEM on a non-dict".into()),
                }
            }
            b'u' => {
                let m = marks.pop().ok_or("SETITEMS without MARK")?;
                let items = stack.split_off(m);
                match stack.last_mut() {
                    Some(Value::Dict(d)) => {
                        for kv in items.chunks(2) {
                            if let [k, v] = kv {
                                d.push((k.clone(), v.clone()));
                            }
                        }
                    }
                    _ => return Err("SETITEMS on a non-dict".into()),
                }
            }
            b'a' => {
                let v = pop(&mut stack)?;
                match stack.last_mut() {
                    Some(Value::List(l)) => l.push(v),
                    _ => return Err("APPEND on a non-list".into()),
                }
            }
            b'e' => {
                let m = marks.pop().ok_or("APPENDS without MARK")?;
                let items = stack.split_off(m);
                match stack.last_mut() {
                    Some(Value::List(l)) => l.extend(items),
                    _ => return Err("APPENDS on a non-list".into()),
                }
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
    }
}
