//! The shared memory region as a hostile worker leaves it: every process maps
//! it writable, so any slot may hold anything. Starting from a well-formed
//! region (counters and table keys in use), slots are overwritten with
//! mutated and random bytes, and every read API of the region (and a write,
//! which takes a slot's lock) must return or fail without a panic, each call
//! within a bound (the lock wait is shortened to keep the run fast).

mod mutator;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::time::{Duration, Instant};

use rcluster_core::shared::{
    Region, COUNTERS_AT, COUNTER_SLOTS, COUNTER_SLOT_LEN, REGION_LEN, TABLE_SLOTS, TABLE_SLOT_LEN,
};

const TABLE_AT: usize = REGION_LEN - TABLE_SLOTS * TABLE_SLOT_LEN;
const LOCK_WAIT: Duration = Duration::from_millis(2);

/// A region with `n` counters and `n` table keys in use, and a `File` over
/// the same memfd, through which the test writes raw bytes (as a worker
/// writes its own mapping).
fn well_formed(n: usize) -> (Region, File, Vec<String>) {
    let (region, fd) = Region::create().unwrap();
    region.set_lock_wait(LOCK_WAIT);
    let names: Vec<String> = (0..n).map(|i| format!("name-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let slot = region.counter(name).unwrap();
        region.add(slot, i as i64 * 1000 - 7);
        let value = format!("{{\"v\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 13 % 900));
        region.table_set(name, Some(value.as_bytes())).unwrap();
        if i % 3 == 0 {
            region.table_set(name, Some(b"[1,2,3]")).unwrap(); // both buffers used
        }
    }
    region.table_set("deleted", Some(b"1")).unwrap();
    region.table_set("deleted", None).unwrap();
    (region, File::from(fd), names)
}

fn snapshot(file: &File) -> Vec<u8> {
    let mut all = vec![0u8; REGION_LEN];
    file.read_exact_at(&mut all, 0).unwrap();
    all
}

/// Every read API, and one write: what the primary and the other workers
/// call. Nothing may panic; each call is bounded by the lock wait.
fn use_everything(region: &Region, names: &[String], pick: usize) {
    let listed = region.counters();
    for (slot, _, _) in listed.iter().take(8) {
        region.get(*slot);
    }
    let name = &names[pick % names.len()];
    if let Ok(slot) = region.counter(name) {
        region.add(slot, 1);
        region.compare_and_set(slot, 0, 1);
    }
    let _ = region.counter(&format!("fresh-{}", pick % 7));
    for key in names.iter().skip(pick % names.len()).take(4) {
        let _ = region.table_get(key);
    }
    let _ = region.table_get("deleted");
    let _ = region.table_get("never-set");
    let _ = region.table_keys();
    let _ = region.table_set(name, Some(b"{\"after\":true}"));
    let _ = region.table_set("deleted", None);
}

#[test]
fn mutated_slots_never_panic_or_hang_a_reader() {
    let (region, file, names) = well_formed(48);
    let clean = snapshot(&file);
    let counter_slot = |i: usize| COUNTERS_AT + i * COUNTER_SLOT_LEN;
    let table_slot = |i: usize| TABLE_AT + i * TABLE_SLOT_LEN;
    // Samples: the used slots, counters whole, table slots as their head
    // (hash, version, lock, lengths, key) and as head plus value bytes.
    let mut samples: Vec<Vec<u8>> = Vec::new();
    for (slot, _, _) in region.counters() {
        samples.push(clean[counter_slot(slot)..counter_slot(slot) + COUNTER_SLOT_LEN].to_vec());
    }
    for i in 0..TABLE_SLOTS {
        let at = table_slot(i);
        if clean[at..at + 8] != [0; 8] {
            samples.push(clean[at..at + 80].to_vec());
            samples.push(clean[at..at + 80 + 256].to_vec());
        }
    }
    let sample_refs: Vec<&[u8]> = samples.iter().map(Vec::as_slice).collect();
    let used_counters: Vec<usize> = region.counters().into_iter().map(|(slot, _, _)| slot).collect();
    let used_table: Vec<usize> = (0..TABLE_SLOTS).filter(|i| clean[table_slot(*i)..table_slot(*i) + 8] != [0; 8]).collect();

    let mut rng = mutator::Rng::new(mutator::seed() ^ 0x5348_4d21);
    let mut n = 0usize;
    let tried = mutator::run("sharedMemory", &sample_refs, Duration::from_secs(2), |input| {
        n += 1;
        if n % 64 == 0 {
            file.write_all_at(&clean, 0).unwrap(); // start over from a well-formed region
        }
        // Where a worker scribbles: a used slot mostly, any slot sometimes,
        // from its start or from anywhere in it.
        let (at, len) = if rng.chance(2) {
            let i = if rng.chance(4) { rng.below(COUNTER_SLOTS) } else { used_counters[rng.below(used_counters.len())] };
            (counter_slot(i), COUNTER_SLOT_LEN)
        } else {
            let i = if rng.chance(4) { rng.below(TABLE_SLOTS) } else { used_table[rng.below(used_table.len())] };
            (table_slot(i), TABLE_SLOT_LEN)
        };
        let offset = if rng.chance(4) { rng.below(len) } else { 0 };
        let bytes = &input[..input.len().min(len - offset)];
        file.write_all_at(bytes, (at + offset) as u64).unwrap();
        use_everything(&region, &names, rng.below(1 << 16));
    });
    assert!(tried > 0);
}

#[test]
fn a_region_of_random_bytes_never_panics_or_hangs_a_reader() {
    let (region, file, names) = well_formed(16);
    let mut rng = mutator::Rng::new(mutator::seed() ^ 0x5241_4e44);
    let rounds = (mutator::inputs() / 1000).clamp(5, 40);
    for round in 0..rounds {
        // Everything after the header: every counter and table slot.
        let mut bytes = rng.bytes(REGION_LEN - COUNTERS_AT);
        if round % 2 == 1 {
            // Half the rounds keep plausible hashes and small lengths, so the
            // readers get past the first checks.
            let clean = well_formed(16).1;
            let clean = snapshot(&clean);
            for i in 0..COUNTER_SLOTS {
                let at = counter_slot_offset(i);
                bytes[at - COUNTERS_AT..at - COUNTERS_AT + 8].copy_from_slice(&clean[at..at + 8]);
                bytes[at - COUNTERS_AT + 16] %= 40;
                bytes[at - COUNTERS_AT + 17..at - COUNTERS_AT + 20].fill(0);
            }
        }
        file.write_all_at(&bytes, COUNTERS_AT as u64).unwrap();
        let started = Instant::now();
        for pick in 0..8 {
            use_everything(&region, &names, pick);
        }
        assert!(started.elapsed() < Duration::from_secs(10), "round {round} took {:?}", started.elapsed());
    }
    println!("fuzz sharedMemory (whole region random): {rounds} regions, 0 panics");
}

fn counter_slot_offset(i: usize) -> usize {
    COUNTERS_AT + i * COUNTER_SLOT_LEN
}
