// The built-in calibration text: a few KB of ordinary source code in the languages a repository prompt
// holds (DESIGN §6 layout: file headers with numbered lines), so that the post-RoPE keys of its prefill
// cover what keys of a real repository look like. Written for this purpose; changing it changes every
// built-in codebook (their cache key includes its digest).
#include "engine/builtin_codebooks.h"

namespace hcattn::engine {

std::string_view builtin_calibration_text() {
  return R"TEXT(<repository name="calibration">
### src/queue.ts
1 | // A bounded queue of jobs with retries; callers await the result of each job.
2 | export interface Job<T> {
3 |   id: string;
4 |   run(signal: AbortSignal): Promise<T>;
5 |   attempts?: number;
6 | }
7 |
8 | export class JobQueue<T> {
9 |   private readonly pending: Array<{ job: Job<T>; resolve: (v: T) => void; reject: (e: unknown) => void }> = [];
10 |   private running = 0;
11 |
12 |   constructor(private readonly limit = 4, private readonly maxAttempts = 3) {}
13 |
14 |   push(job: Job<T>): Promise<T> {
15 |     return new Promise<T>((resolve, reject) => {
16 |       this.pending.push({ job, resolve, reject });
17 |       this.pump();
18 |     });
19 |   }
20 |
21 |   private pump(): void {
22 |     while (this.running < this.limit && this.pending.length > 0) {
23 |       const next = this.pending.shift()!;
24 |       this.running += 1;
25 |       void this.attempt(next.job, 1).then(next.resolve, next.reject).finally(() => {
26 |         this.running -= 1;
27 |         this.pump();
28 |       });
29 |     }
30 |   }
31 |
32 |   private async attempt(job: Job<T>, n: number): Promise<T> {
33 |     const controller = new AbortController();
34 |     try {
35 |       return await job.run(controller.signal);
36 |     } catch (error) {
37 |       if (n >= (job.attempts ?? this.maxAttempts)) throw error;
38 |       await new Promise((r) => setTimeout(r, 50 * 2 ** n));
39 |       return this.attempt(job, n + 1);
40 |     }
41 |   }
42 | }
### lib/matrix.py
1 | """Small dense matrices for the unit tests of the solver."""
2 | from __future__ import annotations
3 |
4 | import math
5 | from dataclasses import dataclass, field
6 |
7 |
8 | @dataclass
9 | class Matrix:
10 |     rows: int
11 |     cols: int
12 |     data: list[float] = field(default_factory=list)
13 |
14 |     def __post_init__(self) -> None:
15 |         if not self.data:
16 |             self.data = [0.0] * (self.rows * self.cols)
17 |         if len(self.data) != self.rows * self.cols:
18 |             raise ValueError(f"expected {self.rows * self.cols} values, got {len(self.data)}")
19 |
20 |     def __getitem__(self, ij: tuple[int, int]) -> float:
21 |         i, j = ij
22 |         return self.data[i * self.cols + j]
23 |
24 |     def __matmul__(self, other: "Matrix") -> "Matrix":
25 |         if self.cols != other.rows:
26 |             raise ValueError("shape mismatch")
27 |         out = Matrix(self.rows, other.cols)
28 |         for i in range(self.rows):
29 |             for k in range(self.cols):
30 |                 a = self[i, k]
31 |                 for j in range(other.cols):
32 |                     out.data[i * other.cols + j] += a * other[k, j]
33 |         return out
34 |
35 |     def norm(self) -> float:
36 |         return math.sqrt(sum(x * x for x in self.data))
### src/cache.rs
1 | use std::collections::HashMap;
2 | use std::hash::Hash;
3 |
4 | /// A least-recently-used cache with a fixed capacity.
5 | pub struct Lru<K, V> {
6 |     map: HashMap<K, (V, u64)>,
7 |     tick: u64,
8 |     capacity: usize,
9 | }
10 |
11 | impl<K: Eq + Hash + Clone, V> Lru<K, V> {
12 |     pub fn new(capacity: usize) -> Self {
13 |         assert!(capacity > 0, "capacity must be positive");
14 |         Self { map: HashMap::new(), tick: 0, capacity }
15 |     }
16 |
17 |     pub fn get(&mut self, key: &K) -> Option<&V> {
18 |         self.tick += 1;
19 |         let tick = self.tick;
20 |         self.map.get_mut(key).map(|entry| {
21 |             entry.1 = tick;
22 |             &entry.0
23 |         })
24 |     }
25 |
26 |     pub fn put(&mut self, key: K, value: V) {
27 |         if self.map.len() == self.capacity && !self.map.contains_key(&key) {
28 |             let oldest = self.map.iter().min_by_key(|(_, e)| e.1).map(|(k, _)| k.clone());
29 |             if let Some(k) = oldest {
30 |                 self.map.remove(&k);
31 |             }
32 |         }
33 |         self.tick += 1;
34 |         self.map.insert(key, (value, self.tick));
35 |     }
36 | }
### src/server/handler.go
1 | package server
2 |
3 | import (
4 | 	"encoding/json"
5 | 	"errors"
6 | 	"net/http"
7 | 	"time"
8 | )
9 |
10 | type Store interface {
11 | 	Load(id string) (*Item, error)
12 | 	Save(item *Item) error
13 | }
14 |
15 | var ErrNotFound = errors.New("item not found")
16 |
17 | type Item struct {
18 | 	ID      string    `json:"id"`
19 | 	Title   string    `json:"title"`
20 | 	Updated time.Time `json:"updated"`
21 | }
22 |
23 | func ItemHandler(store Store) http.HandlerFunc {
24 | 	return func(w http.ResponseWriter, r *http.Request) {
25 | 		id := r.URL.Query().Get("id")
26 | 		item, err := store.Load(id)
27 | 		switch {
28 | 		case errors.Is(err, ErrNotFound):
29 | 			http.Error(w, "no such item: "+id, http.StatusNotFound)
30 | 			return
31 | 		case err != nil:
32 | 			http.Error(w, err.Error(), http.StatusInternalServerError)
33 | 			return
34 | 		}
35 | 		w.Header().Set("Content-Type", "application/json")
36 | 		_ = json.NewEncoder(w).Encode(item)
37 | 	}
38 | }
### native/ring_buffer.h
1 | // Single-producer single-consumer ring buffer; capacity is a power of two.
2 | #pragma once
3 | #include <atomic>
4 | #include <cstddef>
5 | #include <vector>
6 |
7 | template <typename T>
8 | class RingBuffer {
9 |  public:
10 |   explicit RingBuffer(size_t capacity) : slots_(capacity), mask_(capacity - 1) {}
11 |
12 |   bool push(const T& value) {
13 |     const size_t head = head_.load(std::memory_order_relaxed);
14 |     if (head - tail_.load(std::memory_order_acquire) == slots_.size()) return false;
15 |     slots_[head & mask_] = value;
16 |     head_.store(head + 1, std::memory_order_release);
17 |     return true;
18 |   }
19 |
20 |   bool pop(T& out) {
21 |     const size_t tail = tail_.load(std::memory_order_relaxed);
22 |     if (tail == head_.load(std::memory_order_acquire)) return false;
23 |     out = slots_[tail & mask_];
24 |     tail_.store(tail + 1, std::memory_order_release);
25 |     return true;
26 |   }
27 |
28 |  private:
29 |   std::vector<T> slots_;
30 |   size_t mask_;
31 |   std::atomic<size_t> head_{0};
32 |   std::atomic<size_t> tail_{0};
33 | };
### README.md
1 | # Inventory service
2 |
3 | Run `make dev` to start the server on port 8080, then open http://localhost:8080/items?id=42.
4 | Configuration lives in `config.yaml`; set `STORE=postgres` and `DATABASE_URL` for a real database.
5 | Tests: `make test` runs the Go, Python and TypeScript suites; `make lint` checks formatting.
### config.yaml
1 | server:
2 |   port: 8080
3 |   read_timeout: 5s
4 | store:
5 |   kind: memory
6 |   max_items: 10000
7 | queue:
8 |   limit: 4
9 |   max_attempts: 3
</repository>)TEXT";
}

}  // namespace hcattn::engine
