/*
 * Stress: four threads make and free well over a million blocks, hand a
 * quarter of them to a neighbour thread to free, and check every block's
 * contents and every counter (stress.c).
 */
#include <criterion/criterion.h>

#include "stress.h"

Test(stress, threads_trade_blocks_and_the_counts_add_up)
{
    char why[512] = "";

    cr_assert_eq(stress_run(why, sizeof why), 0, "%s", why);
}
