// A retry storm on test_hmm, for the retry-storm finding: one thread mirrors a range through
// /dev/hmm_dmirror0 (HMM_DMIRROR_READ: hmm_range_fault, retried on -EBUSY and when
// mmu_interval_read_retry says the range changed) again and again, while another keeps
// zapping a page inside the range (madvise MADV_DONTNEED: an MMU_NOTIFY_CLEAR invalidation of
// it). `cargo xtask vm-test` expects a retry-storm finding on the range whose invalidations
// overlap it.
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define N 64
#define READS 200

static char *mem;
static long ps;
static atomic_int done;

static void *zapper(void *arg)
{
	(void)arg;
	unsigned long i = 0;
	while (!atomic_load(&done)) {
		char *page = mem + ((i++ % N) * ps);
		madvise(page, ps, MADV_DONTNEED);
		page[0] = 1; /* fault it back so the next read has work to do */
	}
	return NULL;
}

int main(void)
{
	ps = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0) {
		perror("/dev/hmm_dmirror0");
		return 1;
	}
	mem = mmap(NULL, N * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf = malloc(N * ps);
	if (mem == MAP_FAILED || !buf)
		return 1;
	memset(mem, 0x33, N * ps);
	memset(buf, 0, N * ps);
	pthread_t t;
	if (pthread_create(&t, NULL, zapper, NULL))
		return 1;
	int ok = 0;
	for (int r = 0; r < READS; r++) {
		struct hmm_dmirror_cmd cmd = {
			.addr = (unsigned long)mem, .ptr = (unsigned long)buf, .npages = N,
		};
		if (ioctl(fd, HMM_DMIRROR_READ, &cmd) == 0)
			ok++;
	}
	atomic_store(&done, 1);
	pthread_join(t, NULL);
	printf("retry: region %#lx pages %d reads %d ok %d\n", (unsigned long)mem, N, READS, ok);
	return 0;
}
