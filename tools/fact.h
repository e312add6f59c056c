/* fact: N! with GMP, cut into a DAG of pieces that a driver can run in any
 * order it likes, on any threads, as long as each piece runs after its
 * inputs. Independent of morsel: the driver (tools/factorial.c) decides
 * which pieces run as cooperative steps on the loop and which go to workers.
 *
 * The method is GMP's own (Luschny's "divide, swing and conquer"):
 *   N! = 2^v2 * oddfac(N),   oddfac(N) = oddfac(N/2)^2 * oddswing(N),
 * where oddswing(m), the odd part of m! / (m/2)!^2, is a product of prime
 * powers p^e <= m found by sieving. Each swing is a product tree of leaves
 * (one sieve segment each, ~0.2 ms); the chain of squarings and products
 * runs from the smallest level up; a large unbalanced product is cut into
 * balanced chunk products that run in parallel and are summed.
 *
 * For decimal text the factors 5 are left out as well: N! = 10^v5 * X, so
 * only X = N! / 10^v5 is converted and v5 zeros are appended. Conversion is
 * divide and conquer by powers of ten (x = q * 10^s + r, r zero-padded to s
 * digits), the powers computed from the start so they are ready in time.
 *
 * Threads: a plan is owned by one driver thread. fact_piece_run() may run on
 * any thread, concurrently for distinct pieces handed out by fact_plan_take();
 * every other function is for the driver thread only. A piece only reads its
 * inputs and writes its own outputs; inputs are freed in fact_piece_done(). */
#ifndef MORSEL_TOOLS_FACT_H
#define MORSEL_TOOLS_FACT_H

#include <stdbool.h>
#include <stddef.h>

#include <gmp.h>

/* What the plan produces. */
enum fact_output {
    FACT_VALUE = 0,   /* N! as an mpz: fact_plan_result() */
    FACT_DECIMAL = 1, /* the decimal digits of N!, as ordered text chunks */
    FACT_HEX = 2      /* the lowercase hexadecimal digits of N!, likewise */
};

struct fact_plan;

/* Bytes the whole computation may need at its peak, estimated from
 * log2(N!) ~ N log2 N: for refusing early an N that cannot fit. */
double fact_estimate_bytes(unsigned long n, enum fact_output out);

/* Builds the plan for N!. Returns 0, -EINVAL (unknown output), -ENOMEM, or
 * -EOVERFLOW (N! would exceed what an mpz can hold). Owned by the caller. */
int fact_plan_new(struct fact_plan **planp, unsigned long n, enum fact_output out);

/* Frees the plan and whatever it still holds. NULL is ignored. Must not be
 * called while a piece runs. */
void fact_plan_free(struct fact_plan *plan);

/* Hands out the most urgent piece whose inputs are all done, or -1 if none
 * is ready now (pieces are running, or the plan is finished). */
int fact_plan_take(struct fact_plan *plan);

/* True if a piece is too large for a ~1 ms slice: run it on a worker. */
bool fact_piece_big(const struct fact_plan *plan, int piece);

/* Called on the driver thread, instead of mpz_clear, with a number of at
 * least `min_bytes` that the plan no longer needs: the callee owns *z (an
 * mpz_t in malloc'd memory) and must mpz_clear() and free() it, on any
 * thread. Freeing tens of megabytes (munmap, and the other cores' TLBs)
 * takes milliseconds: a driver on an event loop frees them elsewhere. */
typedef void (*fact_release_fn)(mpz_t *z, void *arg);

/* Sets (fn not NULL) or removes the release hook. */
void fact_plan_set_release(struct fact_plan *plan, size_t min_bytes, fact_release_fn fn, void *arg);

/* Runs one piece. Any thread. Returns 0 or -ENOMEM (GMP itself cannot
 * report a failed allocation; see fact_estimate_bytes()). */
int fact_piece_run(struct fact_plan *plan, int piece);

/* Records that a piece has run: frees inputs nobody needs any more and
 * makes the pieces waiting on it ready. */
void fact_piece_done(struct fact_plan *plan, int piece);

/* Counts, for progress: pieces done and pieces in all. */
size_t fact_plan_done_count(const struct fact_plan *plan);
size_t fact_plan_piece_count(const struct fact_plan *plan);
bool fact_plan_finished(const struct fact_plan *plan);

/* For a progress bar: the estimated cost of the pieces done so far, of
 * those handed out (done or running), and of all of them, in one unit
 * (about the running time: see piece_cost() in fact.c), so that done /
 * total grows about as steadily as the time spent. */
double fact_plan_work_done(const struct fact_plan *plan);
double fact_plan_work_started(const struct fact_plan *plan);
double fact_plan_work_total(const struct fact_plan *plan);

/* The length of N!'s text in `out` (FACT_DECIMAL or FACT_HEX), newline
 * included, estimated within a few bytes. */
double fact_text_estimate(unsigned long n, enum fact_output out);

/* FACT_VALUE: moves N! into `out` (an initialised mpz). Once finished. */
void fact_plan_result(struct fact_plan *plan, mpz_t out);

/* FACT_DECIMAL / FACT_HEX: the text is chunks 0 .. fact_text_count()-1 in
 * order. fact_text_take() hands over chunk i once it is ready: its bytes
 * (the caller's to free(); NULL for a run of '0's) and length; it returns
 * false while the chunk is not ready yet, or if it was taken already. The
 * last chunk is the trailing zeros (possibly none); no newline. */
size_t fact_text_count(const struct fact_plan *plan);
bool fact_text_take(struct fact_plan *plan, size_t i, char **bytes, size_t *len);

/* Computes N! on the calling thread by running every piece in order. */
int fact_compute(mpz_t out, unsigned long n);

#endif
