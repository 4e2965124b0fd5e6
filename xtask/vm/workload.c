// The VM's deterministic workload on test_hmm (lib/test_hmm.c, /dev/hmm_dmirror0, a
// device-private dmirror). `cargo xtask vm-test` checks hmmtrace's capture of it against
// the numbers worked out below from test_hmm's code; change both together.
//
//   1. mmap N anonymous pages and write them: plain CPU faults, no HMM event.
//   2. HMM_DMIRROR_MIGRATE_TO_DEV of all N: test_hmm migrates in chunks of 64 pages
//      (src_pfns[64] in dmirror_migrate_to_device), so with N = 64 one migration,
//      cpages = migrated = 64.
//   3. Read M of them from the CPU: each faults into dmirror_devmem_fault (migrate_to_ram),
//      which migrates that one page back: M device faults, M one-page migrations, and the
//      old device page's last reference drops: M page frees.
//   4. HMM_DMIRROR_READ of K pages of a second mapping the CPU populated: they are not in
//      dmirror's page table yet (migrated pages are, so reading those needs no fault), so
//      dmirror_fault runs one hmm_range_fault of K pages (it works in chunks of 64).
//   5. munmap: the N - M device pages still mapped are freed: N - M page frees.
//   6. exit: exit_mmap (MMU_NOTIFY_RELEASE, then UNMAP of everything), then the file closes:
//      dmirror_fops_release evicts each device chunk with migrate_device_range (one record,
//      65536 pages, nothing left to migrate).
// Totals: pages migrated N + M, device faults M, page frees N, range faults 1 (K pages),
// migration records 1 + M + 1. xtask/vm/workload.toml is this program for the reference
// engine; the host compares the two captures' per-kind counts.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define N 64
#define M 16
#define K 32

static int dmirror(int fd, unsigned long req, void *addr, void *buf, unsigned long npages)
{
	struct hmm_dmirror_cmd cmd = {
		.addr = (unsigned long)addr, .ptr = (unsigned long)buf, .npages = npages,
	};
	if (ioctl(fd, req, &cmd) < 0) {
		perror("ioctl");
		return -1;
	}
	return (int)cmd.cpages;
}

int main(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0) {
		perror("/dev/hmm_dmirror0");
		return 1;
	}
	char *mem = mmap(NULL, N * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *other = mmap(NULL, K * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* MIGRATE_TO_DEV copies every migrated page back into cmd.ptr (dmirror's bounce
	 * buffer), so the buffer holds N pages, not K. */
	char *buf = malloc(N * ps);
	if (mem == MAP_FAILED || other == MAP_FAILED || !buf)
		return 1;
	memset(other, 0x33, K * ps);
	memset(buf, 0, N * ps); /* fault the buffer in before the HMM work */
	memset(mem, 0x5a, N * ps);
	int moved = dmirror(fd, HMM_DMIRROR_MIGRATE_TO_DEV, mem, buf, N);
	volatile char sum = 0;
	for (int i = 0; i < M; i++)
		sum += mem[i * ps];
	int read = dmirror(fd, HMM_DMIRROR_READ, other, buf, K);
	munmap(mem, N * ps);
	/* The host checks that an MMU_NOTIFY_UNMAP invalidation covers this range. */
	printf("workload: region %#lx pages %d\n", (unsigned long)mem, N);
	printf("workload: migrated %d, read %d, sum %d\n", moved, read, sum);
	return moved == N && read == K ? 0 : 1;
}
