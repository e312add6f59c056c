/* The peer for `morsel factorial N`, end to end: a blocking C program that
 * computes N! with mpz_fac_ui and prints it with mpz_out_str and a newline.
 * Compare with hyperfine:
 *   hyperfine -N 'bench_fac_gmp_blocking 1000000' 'morsel factorial 1000000' */
#include <stdio.h> /* before gmp.h, which then declares mpz_out_str */

#include <gmp.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_fac_gmp_blocking N\n");
        return 2;
    }
    mpz_t f;
    mpz_init(f);
    mpz_fac_ui(f, strtoul(argv[1], NULL, 10));
    mpz_out_str(stdout, 10, f);
    putchar('\n');
    mpz_clear(f);
    return 0;
}
