//! How nfs-utils 2.6 reads `/etc/exports` (`support/nfs/xio.c`, `support/nfs/exports.c`,
//! `support/export/client.c`), reproduced closely enough that devenv rejects what `exportfs`
//! rejects — including the spots where `exportfs` quietly stops reading, such as a blank line
//! with a CRLF ending.

use super::*;

/// `sizeof(e_path)`: a path token this long makes exportfs stop reading.
const PATH_TOKEN: usize = 1025;
/// `sizeof(exp)` in `getexportent`.
const CLIENT_TOKEN: usize = 512;

/// A token after quote removal and `\ooo` decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Token {
    pub(super) bytes: Vec<u8>,
    pub(super) line: usize,
    /// The line of its last byte (later than `line` when a quote ran over a line end).
    pub(super) last_line: usize,
    /// A quote was open at a line end or at the end of the file.
    pub(super) open_quote: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Export {
    pub(super) path: Token,
    /// Clients `host(options)` and default options `-options`, in order.
    pub(super) words: Vec<Token>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StopKind {
    /// A CR, vertical tab, form feed or NUL where a path should begin.
    StrayByte(u8),
    /// `""` where a path should begin.
    EmptyQuotes,
    PathTooLong,
    ClientTooLong,
}

impl StopKind {
    pub(super) fn describe(self) -> &'static str {
        match self {
            StopKind::StrayByte(b'\r') => {
                "this line starts with a carriage return (a blank line with a CRLF ending?)"
            }
            StopKind::StrayByte(_) => {
                "this line starts with a control character that exportfs does not skip"
            }
            StopKind::EmptyQuotes => "an empty quoted path (\"\")",
            StopKind::PathTooLong => {
                "a path longer than 1024 bytes, where exportfs stops reading the file"
            }
            StopKind::ClientTooLong => {
                "a client longer than 511 bytes: exportfs reports a syntax error"
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Event {
    Export(Export),
    /// Where exportfs stops reading; scanning goes on so every line can be reported.
    Stop {
        line: usize,
        kind: StopKind,
    },
}

enum Tok {
    /// Nothing before the end of the line (`stopper` None) or before `stopper`.
    Empty {
        stopper: Option<u8>,
        quotes: bool,
    },
    TooLong,
    Word(Token),
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
    newlines: Vec<usize>,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        let newlines = bytes
            .iter()
            .enumerate()
            .filter_map(|(i, &b)| (b == b'\n').then_some(i))
            .collect();
        Reader {
            bytes,
            pos: 0,
            newlines,
        }
    }

    fn line_of(&self, pos: usize) -> usize {
        self.newlines.partition_point(|&nl| nl < pos) + 1
    }

    fn raw(&mut self) -> Option<u8> {
        let c = *self.bytes.get(self.pos)?;
        self.pos += 1;
        Some(c)
    }

    /// `xgetc`: a backslash before a newline is a blank that also eats the next line's
    /// leading blanks.
    fn xgetc(&mut self) -> Option<u8> {
        let c = self.raw()?;
        if c == b'\\' && self.bytes.get(self.pos) == Some(&b'\n') {
            self.pos += 1;
            while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t')) {
                self.pos += 1;
            }
            return Some(b' ');
        }
        Some(c)
    }

    fn skip_comment(&mut self) -> Option<u8> {
        loop {
            match self.raw()? {
                b'\n' => return Some(b'\n'),
                _ => continue,
            }
        }
    }

    /// `xskip`: skips bytes of `set`, and a comment where a token could start.
    fn xskip(&mut self, set: &[u8]) {
        loop {
            let mut c = self.xgetc();
            if c == Some(b'#') {
                c = self.skip_comment();
            }
            match c {
                None => return,
                Some(c) if set.contains(&c) => continue,
                Some(_) => {
                    self.pos -= 1;
                    return;
                }
            }
        }
    }

    /// `xgettok`: a token ends at unquoted whitespace or NUL; quotes toggle and are dropped;
    /// `\ooo` below 256 is decoded as soon as its fourth byte is read.
    fn gettok(&mut self, max: usize) -> Tok {
        let line = self.line_of(self.pos);
        let mut tok = Vec::new();
        let mut quoted = false;
        let mut spanned = false;
        let mut quotes = false;
        let mut last = None;
        loop {
            if tok.len() >= max {
                break;
            }
            let Some(c) = self.xgetc() else {
                last = None;
                break;
            };
            last = Some(c);
            if !quoted && (c == 0 || c.is_ascii_whitespace() || c == 0x0b) {
                break;
            }
            if c == b'"' {
                quoted = !quoted;
                quotes = true;
                continue;
            }
            if c == b'\n' {
                spanned = true;
            }
            tok.push(c);
            let i = tok.len();
            if i >= 4
                && tok[i - 4] == b'\\'
                && tok[i - 3..].iter().all(|d| (b'0'..=b'7').contains(d))
            {
                let value = tok[i - 3..]
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(byte) = u8::try_from(value) {
                    tok.truncate(i - 4);
                    tok.push(byte);
                }
            }
        }
        if last == Some(b'\n') {
            self.pos -= 1;
        }
        if tok.is_empty() {
            return Tok::Empty {
                stopper: last.filter(|&c| c != b'\n'),
                quotes,
            };
        }
        if tok.len() >= max {
            return Tok::TooLong;
        }
        if let Some(nul) = tok.iter().position(|&b| b == 0) {
            tok.truncate(nul);
        }
        Tok::Word(Token {
            bytes: tok,
            line,
            last_line: self.line_of(self.pos.saturating_sub(1)),
            open_quote: quoted || spanned,
        })
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.raw() {
            if c == b'\n' {
                break;
            }
        }
    }
}

/// Splits the file into exports the way `getexportent` does: a path, then client words
/// until a token comes back empty (end of line).
pub(super) fn scan(bytes: &[u8]) -> Vec<Event> {
    let mut r = Reader::new(bytes);
    let mut events = Vec::new();
    'file: loop {
        r.xskip(b" \t\n");
        let line = r.line_of(r.pos);
        let path = match r.gettok(PATH_TOKEN) {
            Tok::Empty {
                stopper: None,
                quotes: false,
            } => break,
            Tok::Empty { stopper, quotes } => {
                let kind = match stopper {
                    Some(byte) if !quotes => StopKind::StrayByte(byte),
                    _ => StopKind::EmptyQuotes,
                };
                events.push(Event::Stop { line, kind });
                if stopper.is_none() {
                    break;
                }
                continue;
            }
            Tok::TooLong => {
                events.push(Event::Stop {
                    line,
                    kind: StopKind::PathTooLong,
                });
                r.skip_line();
                continue;
            }
            Tok::Word(token) => token,
        };
        let mut words = Vec::new();
        loop {
            r.xskip(b" \t");
            let line = r.line_of(r.pos);
            match r.gettok(CLIENT_TOKEN) {
                Tok::Empty { .. } => break,
                Tok::TooLong => {
                    events.push(Event::Export(Export { path, words }));
                    events.push(Event::Stop {
                        line,
                        kind: StopKind::ClientTooLong,
                    });
                    r.skip_line();
                    continue 'file;
                }
                Tok::Word(word) => words.push(word),
            }
        }
        events.push(Event::Export(Export { path, words }));
    }
    events
}

pub(super) enum Client<'a> {
    /// `-options`: defaults for the clients after it.
    Defaults(&'a Token),
    /// `host(options)`; `options` is `Err` for a malformed parenthesis.
    Host {
        word: &'a Token,
        host: Vec<u8>,
        options: Option<Result<Vec<u8>, String>>,
    },
    /// No client at all (a path alone, or `-options` last): exported to every host.
    Everyone { line: usize },
}

/// Pairs the words of an export the way successive `getexportent` calls do: a `-options`
/// word is always followed by a client, even one that starts with `-`, or by the world.
pub(super) fn clients<'a>(path: &Token, words: &'a [Token]) -> Vec<Client<'a>> {
    let mut out = Vec::new();
    let mut i = 0;
    if words.is_empty() {
        return vec![Client::Everyone { line: path.line }];
    }
    while i < words.len() {
        let word = &words[i];
        if word.bytes.first() == Some(&b'-') {
            out.push(Client::Defaults(word));
            i += 1;
            match words.get(i) {
                Some(next) => out.push(host_client(next)),
                None => out.push(Client::Everyone { line: word.line }),
            }
        } else {
            out.push(host_client(word));
        }
        i += 1;
    }
    out
}

/// `host(options)`: a `(` at the start means the host `*`; the options end at the first
/// `)`, which must be the last byte.
fn host_client(word: &Token) -> Client<'_> {
    let (host, options) = match word.bytes.iter().position(|&b| b == b'(') {
        None => (word.bytes.clone(), None),
        Some(open) => {
            let host = if open == 0 {
                b"*".to_vec()
            } else {
                word.bytes[..open].to_vec()
            };
            let inner = &word.bytes[open + 1..];
            let options = match inner.iter().position(|&b| b == b')') {
                Some(close) if close == inner.len() - 1 => Ok(inner[..close].to_vec()),
                _ => Err("syntax error: bad option list".to_string()),
            };
            (host, Some(options))
        }
    };
    Client::Host {
        word,
        host,
        options,
    }
}

const FLAGS: &[&[u8]] = &[
    b"ro",
    b"rw",
    b"secure",
    b"insecure",
    b"sync",
    b"async",
    b"nordirplus",
    b"security_label",
    b"nohide",
    b"hide",
    b"crossmnt",
    b"nocrossmnt",
    b"wdelay",
    b"no_wdelay",
    b"root_squash",
    b"no_root_squash",
    b"all_squash",
    b"no_all_squash",
    b"subtree_check",
    b"no_subtree_check",
    b"auth_nlm",
    b"no_auth_nlm",
    b"secure_locks",
    b"insecure_locks",
    b"acl",
    b"no_acl",
    b"pnfs",
    b"no_pnfs",
    b"mountpoint",
    b"mp",
];
const FLAVORS: &[&[u8]] = &[
    b"krb5", b"krb5i", b"krb5p", b"unix", b"sys", b"null", b"none",
];

/// `parseopts`: comma-separated keywords; blanks after a comma are skipped, an empty
/// keyword (`,,` or a leading comma) is unknown, a trailing comma is fine.
pub(super) fn check_options(options: &[u8]) -> Result<(), String> {
    let mut rest = skip_blanks(options);
    while !rest.is_empty() {
        let end = rest.iter().position(|&b| b == b',').unwrap_or(rest.len());
        check_option(&rest[..end])?;
        rest = skip_blanks(rest.get(end + 1..).unwrap_or_default());
    }
    Ok(())
}

fn skip_blanks(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    &bytes[start..]
}

fn check_option(opt: &[u8]) -> Result<(), String> {
    let text = lossy(opt);
    if FLAGS.contains(&opt) {
        return Ok(());
    }
    for (prefix, what) in [(&b"anonuid="[..], "anonuid"), (b"anongid=", "anongid")] {
        if let Some(value) = opt.strip_prefix(prefix) {
            return if strtol_whole(value) {
                Ok(())
            } else {
                Err(format!("bad {what} \"{text}\""))
            };
        }
    }
    if let Some(value) = opt
        .strip_prefix(b"squash_uids=")
        .or_else(|| opt.strip_prefix(b"squash_gids="))
    {
        return squash_range(value);
    }
    if let Some(value) = opt.strip_prefix(b"fsid=") {
        let uuid = value.iter().filter(|b| b.is_ascii_hexdigit()).count() == 32;
        return if value == b"root" || strtoul_whole(value) || uuid {
            Ok(())
        } else {
            Err(format!("bad fsid \"{text}\""))
        };
    }
    if opt.starts_with(b"mountpoint=")
        || opt.starts_with(b"mp=")
        || opt.starts_with(b"refer=")
        || opt.starts_with(b"replicas=")
    {
        return Ok(());
    }
    if let Some(flavors) = opt.strip_prefix(b"sec=") {
        for flavor in flavors.split(|&b| b == b':') {
            if !FLAVORS.contains(&flavor) {
                return Err(format!("unknown flavor {}", lossy(flavor)));
            }
        }
        return Ok(());
    }
    Err(format!("unknown keyword \"{text}\""))
}

fn is_c_space(b: u8) -> bool {
    b.is_ascii_whitespace() || b == 0x0b
}

/// `strtol(value, &end, 10)` consuming all of a non-empty `value`.
fn strtol_whole(value: &[u8]) -> bool {
    let mut i = value.iter().take_while(|&&b| is_c_space(b)).count();
    if matches!(value.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = value[i..].iter().take_while(|b| b.is_ascii_digit()).count();
    digits > 0 && i + digits == value.len()
}

/// `strtoul(value, &end, 0)` consuming all of a non-empty `value`: decimal, `0x` hex or
/// `0` octal.
fn strtoul_whole(value: &[u8]) -> bool {
    let mut i = value.iter().take_while(|&&b| is_c_space(b)).count();
    if matches!(value.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let rest = &value[i..];
    let used = if (rest.starts_with(b"0x") || rest.starts_with(b"0X"))
        && rest.get(2).is_some_and(u8::is_ascii_hexdigit)
    {
        2 + rest[2..]
            .iter()
            .take_while(|b| b.is_ascii_hexdigit())
            .count()
    } else if rest.first() == Some(&b'0') {
        rest.iter()
            .take_while(|b| (b'0'..=b'7').contains(b))
            .count()
    } else {
        rest.iter().take_while(|b| b.is_ascii_digit()).count()
    };
    used > 0 && used == rest.len()
}

/// `parsenum`: an optional `-` and digits, read with `atoi` (so it wraps like a C int).
fn parsenum(bytes: &[u8]) -> (i32, &[u8]) {
    let sign = usize::from(bytes.first() == Some(&b'-'));
    let digits = bytes[sign..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    let mut value: i64 = 0;
    for &d in &bytes[sign..sign + digits] {
        value = value.saturating_mul(10).saturating_add(i64::from(d - b'0'));
    }
    if sign == 1 {
        value = -value;
    }
    (value as i32, &bytes[sign + digits..])
}

/// `parsesquash` as it behaves in practice: one id or range per option.
fn squash_range(value: &[u8]) -> Result<(), String> {
    let (first, rest) = parsenum(value);
    let (last, rest) = match rest.strip_prefix(b"-") {
        Some(rest) => parsenum(rest),
        None => (first, rest),
    };
    if first == -1 || last == -1 {
        return Err("syntax error: uid/gid -1 not permitted".to_string());
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err("syntax error: bad uid/gid list".to_string())
    }
}

/// `client_gettype` and the subnet parsing of `client_init`: only a subnet can be
/// malformed; host names that do not resolve only draw a warning.
pub(super) fn check_host(host: &[u8]) -> Result<(), String> {
    if host.is_empty() || host == b"*" || host.starts_with(b"gss/") || host[0] == b'@' {
        return Ok(());
    }
    let mut i = 0;
    while i < host.len() {
        match host[i] {
            b'*' | b'?' | b'[' => return Ok(()),
            b'/' => return check_subnet(host),
            b'\\' if i + 1 < host.len() => i += 1,
            _ => {}
        }
        i += 1;
    }
    Ok(())
}

fn check_subnet(host: &[u8]) -> Result<(), String> {
    let text = lossy(host);
    let (address, mask) = text.split_once('/').expect("caller saw a slash");
    let (max, mask_ok) = if address.parse::<Ipv4Addr>().is_ok() {
        (32, mask.parse::<Ipv4Addr>().is_ok())
    } else if address.contains(':') && address.parse::<Ipv6Addr>().is_ok() {
        (128, mask.parse::<Ipv6Addr>().is_ok())
    } else {
        return Err(format!("Invalid IP address {text}"));
    };
    if mask.contains(if max == 32 { '.' } else { ':' }) {
        return if mask_ok {
            Ok(())
        } else {
            Err(format!("Invalid netmask `{mask}' for {text}"))
        };
    }
    if prefix_ok(mask.as_bytes(), max) {
        Ok(())
    } else {
        Err(format!("Invalid prefix `{mask}' for {text}"))
    }
}

/// `strtoul(mask, &end, 10)` must use all of it (an empty mask reads as 0) and stay
/// within `max`.
fn prefix_ok(mask: &[u8], max: u64) -> bool {
    let mut i = mask.iter().take_while(|&&b| is_c_space(b)).count();
    let negative = mask.get(i) == Some(&b'-');
    if matches!(mask.get(i), Some(b'+' | b'-')) {
        i += 1;
    }
    let digits = &mask[i..];
    if mask.is_empty() {
        return true;
    }
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let value = digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    (value == 0 || !negative) && value <= max
}

impl ExportsFile {
    pub(super) fn check_linux(&self) -> Vec<LineProblem> {
        let owners = self.owners();
        let owner = |line: usize| owners.get(line - 1).cloned().flatten();
        let events = linux::scan(&self.to_bytes());
        let exports: Vec<(usize, Option<BlockKey>)> = events
            .iter()
            .filter_map(|e| match e {
                linux::Event::Export(export) => Some((export.path.line, owner(export.path.line))),
                linux::Event::Stop { .. } => None,
            })
            .collect();
        let hidden = |hides: Hides| -> Vec<BlockKey> {
            let mut keys: Vec<BlockKey> = match hides {
                Hides::Nothing => vec![],
                Hides::After(line) => exports
                    .iter()
                    .filter(|(l, _)| *l > line)
                    .filter_map(|(_, key)| key.clone())
                    .collect(),
                Hides::Lines(first, last) => (first..=last).filter_map(owner).collect(),
            };
            keys.dedup();
            keys
        };
        let mut problems = Vec::new();
        let mut exported: HashMap<(PathBuf, String), usize> = HashMap::new();
        for event in &events {
            match event {
                linux::Event::Stop { line, kind } => {
                    let later = exports.iter().map(|(l, _)| *l).find(|l| l > line);
                    let message = match (kind, later) {
                        (linux::StopKind::ClientTooLong, _)
                        | (linux::StopKind::PathTooLong, None) => kind.describe().to_string(),
                        (_, Some(later)) => format!(
                            "{}, so exportfs stops reading the file here and ignores the exports from line {later} on",
                            kind.describe()
                        ),
                        (_, None) => continue,
                    };
                    problems.push(LineProblem {
                        line: *line,
                        block: owner(*line),
                        message,
                        hides: hidden(Hides::After(*line)),
                    });
                }
                linux::Event::Export(export) => {
                    let block = owner(export.path.line);
                    for (line, message, hides) in
                        linux_export_problems(export, &block, &mut exported)
                    {
                        problems.push(LineProblem {
                            line,
                            block: block.clone(),
                            message,
                            hides: hidden(hides),
                        });
                    }
                }
            }
        }
        problems
    }
}

/// Which of devenv's exports a problem keeps the server from reading.
#[derive(Debug, Clone, Copy)]
enum Hides {
    Nothing,
    /// exportfs stops reading the file at this line.
    After(usize),
    /// These lines (inclusive) are swallowed by an open quote.
    Lines(usize, usize),
}

/// What exportfs rejects in one export (a path and its clients), plus, inside a devenv block,
/// clients beyond [`check_client_scope`]. `exported` remembers each path and client seen so far,
/// since exportfs refuses a directory exported twice to one client.
fn linux_export_problems(
    export: &linux::Export,
    block: &Option<BlockKey>,
    exported: &mut HashMap<(PathBuf, String), usize>,
) -> Vec<(usize, String, Hides)> {
    let mut problems = Vec::new();
    let path = &export.path;
    if path.open_quote {
        problems.push((
            path.line,
            "unterminated quote: exportfs reads on past the end of the line to the next quote"
                .to_string(),
            Hides::Lines(path.line + 1, path.last_line),
        ));
    }
    if path.bytes.first() != Some(&b'/') {
        problems.push((
            path.line,
            format!("export path {} is not absolute", lossy(&path.bytes)),
            Hides::Nothing,
        ));
    }
    for word in export.words.iter().filter(|w| w.open_quote) {
        problems.push((
            word.line,
            format!("unterminated quote in {}", lossy(&word.bytes)),
            Hides::Lines(word.line + 1, word.last_line),
        ));
    }
    let normalized: PathBuf = path_from(&path.bytes).components().collect();
    for client in linux::clients(path, &export.words) {
        let (line, host) = match client {
            linux::Client::Defaults(word) => {
                if let Err(message) = linux::check_options(&word.bytes[1..]) {
                    problems.push((word.line, message, Hides::After(word.line)));
                }
                continue;
            }
            linux::Client::Everyone { line } => (line, String::new()),
            linux::Client::Host {
                word,
                host,
                options,
            } => {
                if word.bytes == b"\\" {
                    problems.push((
                        word.line,
                        "a backslash before a CRLF line ending does not continue the line for exportfs: use LF line endings or join the lines".to_string(),
                        Hides::Nothing,
                    ));
                    continue;
                }
                // Option errors end exportfs's reading of the file; client errors do not.
                let options = match options {
                    Some(Err(message)) => Err(message),
                    Some(Ok(options)) => linux::check_options(&options),
                    None => Ok(()),
                };
                if let Err(message) = options {
                    problems.push((word.line, message, Hides::After(word.line)));
                    continue;
                }
                if let Err(message) = linux::check_host(&host) {
                    problems.push((word.line, message, Hides::Nothing));
                    continue;
                }
                (word.line, lossy(&host))
            }
        };
        let client = if host.is_empty() { "*" } else { host.as_str() };
        let key = (normalized.clone(), client.to_string());
        if let Some(first) = exported.get(&key) {
            problems.push((
                line,
                format!(
                    "{} is exported to {client} again (first on line {first}): exportfs rejects duplicated export entries",
                    normalized.display()
                ),
                Hides::Nothing,
            ));
        } else {
            exported.insert(key, line);
        }
        if block.is_some()
            && let Err(e) = check_client_scope(&host)
        {
            problems.push((line, e.to_string(), Hides::Nothing));
        }
    }
    problems
}
