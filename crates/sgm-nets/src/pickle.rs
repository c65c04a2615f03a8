//! A small reader for the pickle programs `torch.save` writes (protocol 2, as used by the
//! official checkpoints), enough for `{model, ema, optimizer, step}`: dicts keep their order,
//! lists are kept (burn-store drops them), tensors are resolved to their zip storages, and
//! anything else (numpy scalars in the optimizer state, module metadata) is kept opaque.
//! Python 2 strings (`SHORT_BINSTRING` / `BINSTRING`) are read as bytes and the state a `BUILD`
//! gives an opaque object is kept ([`Value::Built`]), so numpy arrays can be decoded
//! ([`Value::ndarray`], e.g. the CIFAR-10 python batches).

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
    /// An opaque object and the state `BUILD` gave it (`obj.__setstate__(state)`, numpy arrays).
    Built(Box<Value>, Box<Value>),
    /// A persistent id (torch storages).
    PersId(Box<Value>),
    /// A tensor.
    Tensor(TensorRef),
}

/// A numpy array decoded from its pickle (`numpy.core.multiarray._reconstruct` + `BUILD`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NdArray<'a> {
    /// dtype string as numpy names it (`u1`, `f4`, `<f8`, …).
    pub dtype: &'a str,
    /// Shape.
    pub shape: &'a [Value],
    /// True for column-major data.
    pub fortran_order: bool,
    /// The raw data.
    pub data: &'a [u8],
}

impl Value {
    /// Looks up a string key of a dict (a `str` key, or a Python 2 / bytes key of the same
    /// characters).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(items) => items.iter().find_map(|(k, v)| match k {
                Value::Str(s) if s == key => Some(v),
                Value::Bytes(b) if b == key.as_bytes() => Some(v),
                _ => None,
            }),
            _ => None,
        }
    }

    /// The numpy array this value pickles: `_reconstruct(ndarray, …)` built with the state
    /// `(version, shape, dtype, fortran_order, data)`. Errors say what is missing.
    pub fn ndarray(&self) -> Result<NdArray<'_>, String> {
        let Value::Built(obj, state) = self else {
            return Err("not a numpy array (no BUILD state)".into());
        };
        match obj.as_ref() {
            Value::Object(c, _) if is_numpy(c, "_reconstruct") => {}
            _ => return Err("not a numpy array (not built by numpy's _reconstruct)".into()),
        }
        let Value::Tuple(st) = state.as_ref() else {
            return Err("numpy array state is not a tuple".into());
        };
        let [_, shape, dtype, fortran, data] = st.as_slice() else {
            return Err(format!(
                "numpy array state has {} items, expected 5",
                st.len()
            ));
        };
        let Value::Tuple(shape) = shape else {
            return Err("numpy array shape is not a tuple".into());
        };
        // dtype: numpy.dtype(name, align, copy) (+ BUILD state with the byte order)
        let dtype_obj = match dtype {
            Value::Built(o, _) => o.as_ref(),
            o => o,
        };
        let dtype = match dtype_obj {
            Value::Object(c, args) if is_numpy(c, "dtype") => match args.as_ref() {
                Value::Tuple(a) => match a.first() {
                    Some(Value::Str(s)) => s.as_str(),
                    Some(Value::Bytes(b)) => std::str::from_utf8(b).unwrap_or("?"),
                    _ => return Err("numpy dtype without a name".into()),
                },
                _ => return Err("numpy dtype without arguments".into()),
            },
            _ => return Err("numpy array without a dtype".into()),
        };
        let fortran_order = matches!(fortran, Value::Bool(true) | Value::Int(1));
        let Value::Bytes(data) = data else {
            return Err("numpy array data is not a byte string".into());
        };
        Ok(NdArray {
            dtype,
            shape,
            fortran_order,
            data,
        })
    }
}

fn is_numpy(v: &Value, name: &str) -> bool {
    matches!(v, Value::Global(m, n) if n == name && (m == "numpy" || m.starts_with("numpy.")))
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
        // Python 3 protocol-2 bytes: `_codecs.encode(str, 'latin1')`.
        ("_codecs", "encode") => match items.as_slice() {
            [Value::Str(s), Value::Str(enc)] if enc == "latin1" || enc == "latin-1" => s
                .chars()
                .map(|c| u8::try_from(c as u32).map_err(|_| "non-latin1 character".to_string()))
                .collect::<Result<Vec<u8>, String>>()
                .map(Value::Bytes),
            _ => Ok(Value::Object(Box::new(callable), Box::new(args))),
        },
        _ => Ok(Value::Object(Box::new(callable), Box::new(args))),
    }
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| format!("truncated pickle ({n} bytes declared at byte {})", self.pos))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
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
        let rest = self.b.get(self.pos..).unwrap_or_default();
        let n = rest
            .iter()
            .position(|&c| c == b'\n')
            .ok_or("truncated pickle (unterminated GLOBAL line)")?;
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }
    fn len8(&mut self) -> Result<usize, String> {
        let s = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        usize::try_from(u64::from_le_bytes(a)).map_err(|_| "length field overflows".to_string())
    }
}

/// Deepest nesting of containers a checkpoint may use (torch state dicts nest a handful of
/// levels); deeper programs are rejected so that cloning or dropping a value cannot exhaust the
/// call stack.
pub const MAX_DEPTH: u32 = 64;

/// A value on the pickle stack with its nesting depth and size (in nodes). Memo copies
/// (`BINGET`) are charged to a budget proportional to the program's length, so a small program
/// cannot build an exponentially large value ("billion laughs").
#[derive(Clone)]
struct Node {
    v: Value,
    depth: u32,
    weight: usize,
}

impl Node {
    fn leaf(v: Value) -> Node {
        let weight = 1 + match &v {
            Value::Str(s) => s.len() / 8,
            Value::Bytes(b) => b.len() / 8,
            _ => 0,
        };
        Node {
            v,
            depth: 1,
            weight,
        }
    }
    /// A container (or derived value) holding `parts`.
    fn of(v: Value, parts: &[&Node]) -> Result<Node, String> {
        let depth = 1 + parts.iter().map(|n| n.depth).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(format!("pickle nests deeper than {MAX_DEPTH} levels"));
        }
        let weight = parts.iter().fold(1usize, |w, n| w.saturating_add(n.weight));
        Ok(Node { v, depth, weight })
    }
    /// Records that `child` was added to this container.
    fn absorb(&mut self, child: &Node) -> Result<(), String> {
        self.depth = self.depth.max(child.depth + 1);
        if self.depth > MAX_DEPTH {
            return Err(format!("pickle nests deeper than {MAX_DEPTH} levels"));
        }
        self.weight = self.weight.saturating_add(child.weight);
        Ok(())
    }
}

/// Parses a pickle program into a [`Value`]. Malformed programs (truncated, unknown opcodes,
/// stack underflow, nesting deeper than [`MAX_DEPTH`], memo copies larger than the program
/// allows) are errors; memory stays proportional to `bytes.len()`.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut r = Reader { b: bytes, pos: 0 };
    let mut stack: Vec<Node> = Vec::new();
    let mut marks: Vec<usize> = Vec::new();
    let mut memo: HashMap<usize, Node> = HashMap::new();
    // nodes that memo copies may add in total
    let mut budget = bytes.len().saturating_mul(2).saturating_add(1 << 16);
    let pop = |s: &mut Vec<Node>| s.pop().ok_or_else(|| "pickle stack underflow".to_string());
    let pop_mark = |s: &mut Vec<Node>, marks: &mut Vec<usize>, what: &str| {
        let m = marks.pop().ok_or_else(|| format!("{what} without MARK"))?;
        if m > s.len() {
            return Err(format!("{what}: MARK lies above the stack"));
        }
        Ok::<Vec<Node>, String>(s.split_off(m))
    };
    let memo_put = |memo: &mut HashMap<usize, Node>, i: usize, s: &[Node]| {
        let top = s.last().cloned().ok_or("memo of empty stack")?;
        memo.insert(i, top);
        Ok::<(), String>(())
    };
    loop {
        let op = r.u8()?;
        match op {
            0x80 => {
                r.u8()?; // PROTO
            }
            0x95 => {
                r.take(8)?; // FRAME
            }
            b'.' => return pop(&mut stack).map(|n| n.v), // STOP
            b'(' => marks.push(stack.len()),             // MARK
            b'}' => stack.push(Node::leaf(Value::Dict(Vec::new()))),
            b']' => stack.push(Node::leaf(Value::List(Vec::new()))),
            b')' => stack.push(Node::leaf(Value::Tuple(Vec::new()))),
            b'N' => stack.push(Node::leaf(Value::None)),
            0x88 => stack.push(Node::leaf(Value::Bool(true))),
            0x89 => stack.push(Node::leaf(Value::Bool(false))),
            b'J' => {
                let s = r.take(4)?;
                stack.push(Node::leaf(Value::Int(
                    i32::from_le_bytes([s[0], s[1], s[2], s[3]]) as i64,
                )));
            }
            b'K' => {
                let v = r.u8()?;
                stack.push(Node::leaf(Value::Int(v as i64)));
            }
            b'M' => {
                let v = r.u16()?;
                stack.push(Node::leaf(Value::Int(v as i64)));
            }
            0x8a => {
                // LONG1: little-endian two's complement of n bytes (values beyond i64 wrap,
                // which no tensor field can use: they fail the size checks later)
                let n = r.u8()? as usize;
                let s = r.take(n)?;
                let mut v: i64 = 0;
                for (i, &byte) in s.iter().enumerate().take(8) {
                    v |= (byte as i64) << (8 * i);
                }
                if n > 0 && n < 8 && s[n - 1] & 0x80 != 0 {
                    v -= 1i64 << (8 * n);
                }
                stack.push(Node::leaf(Value::Int(v)));
            }
            b'G' => {
                let s = r.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(s);
                stack.push(Node::leaf(Value::Float(f64::from_be_bytes(a))));
            }
            b'X' | 0x8c | 0x8d => {
                // BINUNICODE / SHORT_BINUNICODE / BINUNICODE8
                let n = match op {
                    b'X' => r.u32()?,
                    0x8c => r.u8()? as usize,
                    _ => r.len8()?,
                };
                let s = r.take(n)?;
                stack.push(Node::leaf(Value::Str(
                    String::from_utf8_lossy(s).into_owned(),
                )));
            }
            b'B' | b'C' | 0x8e | b'T' | b'U' => {
                // BINBYTES / SHORT_BINBYTES / BINBYTES8; Python 2 BINSTRING / SHORT_BINSTRING
                // (read as bytes, as Python 3 does with encoding='bytes')
                let n = match op {
                    b'B' => r.u32()?,
                    b'T' => {
                        let n = r.u32()?;
                        if n > i32::MAX as usize {
                            return Err("negative BINSTRING length".into());
                        }
                        n
                    }
                    b'C' | b'U' => r.u8()? as usize,
                    _ => r.len8()?,
                };
                let s = r.take(n)?.to_vec();
                stack.push(Node::leaf(Value::Bytes(s)));
            }
            b'c' => {
                // GLOBAL module\nname\n
                let m = r.line()?;
                let n = r.line()?;
                stack.push(Node::leaf(Value::Global(m, n)));
            }
            0x93 => {
                // STACK_GLOBAL
                let n = pop(&mut stack)?;
                let m = pop(&mut stack)?;
                match (m.v, n.v) {
                    (Value::Str(m), Value::Str(n)) => stack.push(Node::leaf(Value::Global(m, n))),
                    _ => return Err("STACK_GLOBAL needs two strings".into()),
                }
            }
            b'q' => {
                let i = r.u8()? as usize;
                memo_put(&mut memo, i, &stack)?;
            }
            b'r' => {
                let i = r.u32()?;
                memo_put(&mut memo, i, &stack)?;
            }
            0x94 => {
                // MEMOIZE
                let i = memo.len();
                memo_put(&mut memo, i, &stack)?;
            }
            b'h' | b'j' => {
                let i = if op == b'h' {
                    r.u8()? as usize
                } else {
                    r.u32()?
                };
                let n = memo.get(&i).ok_or("unknown memo index")?;
                budget = budget
                    .checked_sub(n.weight)
                    .ok_or("memo copies exceed what the pickle's length allows")?;
                stack.push(n.clone());
            }
            b'Q' => {
                // BINPERSID
                let pid = pop(&mut stack)?;
                let n = Node::of(Value::None, &[&pid])?;
                stack.push(Node {
                    v: Value::PersId(Box::new(pid.v)),
                    ..n
                });
            }
            b'R' | 0x81 => {
                // REDUCE callable(*args) / NEWOBJ cls.__new__(cls, *args)
                let args = pop(&mut stack)?;
                let callable = pop(&mut stack)?;
                let n = Node::of(Value::None, &[&callable, &args])?;
                stack.push(Node {
                    v: reduce(callable.v, args.v)?,
                    ..n
                });
            }
            b'b' => {
                // BUILD: an opaque object keeps its state (numpy arrays); other state (a
                // state dict's `_metadata`) is not needed
                let state = pop(&mut stack)?;
                let Some(top) = stack.last_mut() else {
                    return Err("BUILD on an empty stack".into());
                };
                if matches!(top.v, Value::Object(..)) {
                    top.absorb(&state)?;
                    let obj = std::mem::replace(&mut top.v, Value::None);
                    top.v = Value::Built(Box::new(obj), Box::new(state.v));
                }
            }
            b't' | 0x85 | 0x86 | 0x87 => {
                let items = match op {
                    b't' => pop_mark(&mut stack, &mut marks, "TUPLE")?,
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
                let n = Node::of(Value::None, &items.iter().collect::<Vec<_>>())?;
                stack.push(Node {
                    v: Value::Tuple(items.into_iter().map(|i| i.v).collect()),
                    ..n
                });
            }
            b's' | b'u' => {
                // SETITEM / SETITEMS
                let items = if op == b's' {
                    let v = pop(&mut stack)?;
                    vec![pop(&mut stack)?, v]
                } else {
                    pop_mark(&mut stack, &mut marks, "SETITEMS")?
                };
                if items.len() % 2 != 0 {
                    return Err("SETITEMS with an odd number of items".into());
                }
                let Some(dict) = stack.last_mut() else {
                    return Err("SETITEM on an empty stack".into());
                };
                for item in &items {
                    dict.absorb(item)?;
                }
                let Value::Dict(d) = &mut dict.v else {
                    return Err("SETITEM on a non-dict".into());
                };
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    d.push((k.v, v.v));
                }
            }
            b'a' | b'e' => {
                // APPEND / APPENDS
                let items = if op == b'a' {
                    vec![pop(&mut stack)?]
                } else {
                    pop_mark(&mut stack, &mut marks, "APPENDS")?
                };
                let Some(list) = stack.last_mut() else {
                    return Err("APPEND on an empty stack".into());
                };
                for item in &items {
                    list.absorb(item)?;
                }
                let Value::List(l) = &mut list.v else {
                    return Err("APPEND on a non-list".into());
                };
                l.extend(items.into_iter().map(|i| i.v));
            }
            other => return Err(format!("unsupported pickle opcode 0x{other:02x}")),
        }
    }
}
