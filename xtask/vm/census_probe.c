// SPDX-License-Identifier: GPL-2.0
/*
 * hmmtrace's census check: a module built out of tree (so the kernel taints it 'O') that
 * consumes two of HMM's exports when it loads: it mirrors one page of the loading process
 * with an interval notifier and removes it again.
 */
#include <linux/mm.h>
#include <linux/mmu_notifier.h>
#include <linux/module.h>
#include <linux/sched.h>

static bool census_invalidate(struct mmu_interval_notifier *sub,
			      const struct mmu_notifier_range *range,
			      unsigned long cur_seq)
{
	mmu_interval_set_seq(sub, cur_seq);
	return true;
}

static const struct mmu_interval_notifier_ops census_ops = {
	.invalidate = census_invalidate,
};

static struct mmu_interval_notifier census_sub;

static int __init census_init(void)
{
	int ret = mmu_interval_notifier_insert(&census_sub, current->mm, 0x10000,
					       PAGE_SIZE, &census_ops);

	if (ret)
		return ret;
	mmu_interval_notifier_remove(&census_sub);
	return 0;
}

static void __exit census_exit(void)
{
}

module_init(census_init);
module_exit(census_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("hmmtrace census check: consumes mmu_interval_notifier_insert and _remove");
