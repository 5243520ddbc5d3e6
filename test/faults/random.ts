/**
 * Seeded randomness for the fault-injection runs: every choice (when a fault strikes, how long it lasts, which
 * instance a request goes to, how long a session waits) comes from one seed, so that a failing run can be replayed
 * with its seed. Each consumer draws from a stream of its own (`stream(label)`), so that one session's choices do
 * not depend on how the others' requests happened to interleave.
 */
export interface Random {
  /** Uniform in [0, 1). */
  next(): number;
  /** Uniform in [low, high). */
  between(low: number, high: number): number;
  /** An integer in [low, high]. */
  int(low: number, high: number): number;
  pick<T>(items: readonly T[]): T;
  chance(probability: number): boolean;
  /** An independent stream derived from this one's seed and `label`. */
  stream(label: string): Random;
}

/** A fresh seed for a run that was given none (printed with the results, so it can be given next time). */
export function newSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

export function seededRandom(seed: number): Random {
  const next = mulberry32(seed >>> 0);
  const random: Random = {
    next,
    between: (low, high) => low + next() * (high - low),
    int: (low, high) => low + Math.floor(next() * (high - low + 1)),
    pick: (items) => {
      if (items.length === 0) throw new Error('pick from nothing');
      return items[Math.floor(next() * items.length)]!;
    },
    chance: (probability) => next() < probability,
    stream: (label) => seededRandom(hash(`${seed}/${label}`)),
  };
  return random;
}

/** mulberry32: a small 32-bit generator, plenty for scheduling faults. */
function mulberry32(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** FNV-1a over the label's UTF-16 code units. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i += 1) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
