'use strict';
// The glibc symbol versions an ELF shared object needs (`GLIBC_2.17`, ...),
// read from its version-needs section (.gnu.version_r), as `objdump -T`
// shows them. The oldest glibc a binary loads on is the highest of these, so
// the release refuses a binary above its baseline, and the release test
// checks the published one. Pure JS so that no binutils are needed.
//
//   node scripts/glibc-versions.js FILE   prints the highest and exits 0
const fs = require('node:fs');

const SHT_GNU_VERNEED = 0x6ffffffe;

// [major, minor, ...] of 'GLIBC_2.17' -> [2, 17].
function parseVersion(name) {
  return name.slice('GLIBC_'.length).split('.').map(Number);
}

function compareVersions(a, b) {
  const x = typeof a === 'string' ? parseVersion(a) : a;
  const y = typeof b === 'string' ? parseVersion(b) : b;
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const d = (x[i] || 0) - (y[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

function cString(buf, offset) {
  if (offset < 0 || offset >= buf.length) throw new Error(`string offset ${offset} is outside the file`);
  const end = buf.indexOf(0, offset);
  return buf.toString('latin1', offset, end === -1 ? buf.length : end);
}

// Every GLIBC_* version the file needs, sorted oldest first. Throws on a file
// that is not a 64-bit little-endian ELF (the only kind this project ships
// for glibc).
function glibcVersions(file) {
  const buf = fs.readFileSync(file);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new Error(`${file} is not a 64-bit little-endian ELF file`);
  const shoff = Number(buf.readBigUInt64LE(0x28));
  const shentsize = buf.readUInt16LE(0x3a);
  const shnum = buf.readUInt16LE(0x3c);
  const section = (i) => {
    const at = shoff + i * shentsize;
    if (at + 64 > buf.length) throw new Error(`${file}: section header ${i} is outside the file`);
    return {
      type: buf.readUInt32LE(at + 4),
      offset: Number(buf.readBigUInt64LE(at + 0x18)),
      link: buf.readUInt32LE(at + 0x28),
      info: buf.readUInt32LE(at + 0x2c), // number of Verneed entries
    };
  };
  const found = new Set();
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (s.type !== SHT_GNU_VERNEED) continue;
    const strtab = section(s.link).offset;
    // Elf64_Verneed: vn_version u16, vn_cnt u16, vn_file u32, vn_aux u32, vn_next u32.
    // Elf64_Vernaux: vna_hash u32, vna_flags u16, vna_other u16, vna_name u32, vna_next u32.
    let need = s.offset;
    for (let n = 0; n < s.info; n++) {
      const count = buf.readUInt16LE(need + 2);
      let aux = need + buf.readUInt32LE(need + 8);
      for (let k = 0; k < count; k++) {
        const name = cString(buf, strtab + buf.readUInt32LE(aux + 8));
        if (/^GLIBC_\d+(\.\d+)*$/.test(name)) found.add(name);
        const next = buf.readUInt32LE(aux + 12);
        if (next === 0) break;
        aux += next;
      }
      const next = buf.readUInt32LE(need + 12);
      if (next === 0) break;
      need += next;
    }
  }
  return [...found].sort(compareVersions);
}

// The highest GLIBC_* version the file needs, or null when it needs none.
function highestGlibc(file) {
  const all = glibcVersions(file);
  return all.length === 0 ? null : all[all.length - 1];
}

module.exports = { glibcVersions, highestGlibc, compareVersions };

if (require.main === module) {
  const file = process.argv[2];
  if (!file) {
    console.error('usage: node scripts/glibc-versions.js FILE');
    process.exit(2);
  }
  console.log(highestGlibc(file) || 'no GLIBC_ version needed');
}
