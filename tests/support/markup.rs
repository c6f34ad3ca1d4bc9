//! An XML-style well-formedness check of the HTML and SVG driftwatch
//! writes, independent of the code that writes them.

/// An XML-style well-formedness check, independent of the page's own
/// code: every element closed in order (void elements must self-close),
/// attributes quoted, no raw `<` in text or values, every `&` an entity,
/// one root element.
pub fn check_well_formed(doc: &str) -> Result<(), String> {
    let mut rest = doc.trim_start();
    if let Some(after) = rest.strip_prefix("<!DOCTYPE html>") {
        rest = after;
    }
    let mut stack: Vec<&str> = Vec::new();
    let mut roots = 0;
    while let Some(open) = rest.find('<') {
        check_text(&rest[..open])?;
        rest = &rest[open..];
        if let Some(after) = rest.strip_prefix("<!--") {
            let end = after.find("-->").ok_or("unclosed comment")?;
            rest = &after[end + 3..];
            continue;
        }
        if let Some(after) = rest.strip_prefix("</") {
            let end = after.find('>').ok_or("unclosed end tag")?;
            let name = after[..end].trim();
            match stack.pop() {
                Some(top) if top == name => {}
                top => return Err(format!("</{name}> closes {top:?}")),
            }
            rest = &after[end + 1..];
            continue;
        }
        if stack.is_empty() {
            roots += 1;
        }
        let (name, self_closed, after) = start_tag(&rest[1..])?;
        if !self_closed {
            stack.push(name);
        }
        rest = after;
    }
    check_text(rest)?;
    match (stack.last(), roots) {
        (Some(open), _) => Err(format!("<{open}> is never closed")),
        (None, 1) => Ok(()),
        (None, n) => Err(format!("{n} root elements")),
    }
}

/// Parses a start tag after its `<`: (name, self-closed, the rest).
fn start_tag(tag: &str) -> Result<(&str, bool, &str), String> {
    let name_end = tag
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .ok_or("unterminated tag")?;
    let name = &tag[..name_end];
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(format!("bad tag name {name:?}"));
    }
    let mut rest = &tag[name_end..];
    let mut seen = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("/>") {
            return Ok((name, true, after));
        }
        if let Some(after) = rest.strip_prefix('>') {
            return Ok((name, false, after));
        }
        let eq = rest
            .find('=')
            .ok_or(format!("attribute without value in <{name}>"))?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains(|c: char| c.is_whitespace() || c == '<' || c == '>') {
            return Err(format!("bad attribute {key:?} in <{name}>"));
        }
        if seen.contains(&key) {
            return Err(format!("attribute {key} twice in <{name}>"));
        }
        seen.push(key);
        let value = rest[eq + 1..]
            .strip_prefix('"')
            .ok_or(format!("unquoted {key} in <{name}>"))?;
        let close = value
            .find('"')
            .ok_or(format!("unclosed {key} in <{name}>"))?;
        if value[..close].contains('<') {
            return Err(format!("raw < in {key} of <{name}>"));
        }
        check_entities(&value[..close])?;
        rest = &value[close + 1..];
    }
}

/// Text between tags: splitting at `<` leaves none in it, so only its
/// entities need checking.
fn check_text(text: &str) -> Result<(), String> {
    check_entities(text)
}

/// Every `&` starts `&name;` or `&#digits;`.
fn check_entities(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        let after = &rest[amp + 1..];
        let end = after.find(';').ok_or(format!("bare & in {text:?}"))?;
        let entity = &after[..end];
        let named = !entity.is_empty() && entity.chars().all(|c| c.is_ascii_alphanumeric());
        let numeric = entity
            .strip_prefix('#')
            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !named && !numeric {
            return Err(format!("bare & in {text:?}"));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}
