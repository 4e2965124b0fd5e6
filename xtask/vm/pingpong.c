// Thrashing on test_hmm, for the thrashing finding: migrate N pages to /dev/hmm_dmirror0, read
// every one from the CPU (each faults back through dmirror_devmem_fault, a one-page migration
// to RAM), K times over. The buffer sits inside one 2 MiB-aligned block so the finding's range
// is exactly it. `cargo xtask vm-test` expects one thrashing finding on
// [region, region + N pages): K - 1 round trips (device -> RAM -> device), and 2 K N pages of
// bytes moved (K migrations of N pages to the device, K N one-page migrations back).
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <lib/test_hmm_uapi.h>

#define N 16
#define K 8

int main(void)
{
	long ps = sysconf(_SC_PAGESIZE);
	int fd = open("/dev/hmm_dmirror0", O_RDWR);
	if (fd < 0) {
		perror("/dev/hmm_dmirror0");
		return 1;
	}
	size_t two_mb = 2UL << 20;
	char *raw = mmap(NULL, 2 * two_mb, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *buf = malloc(N * ps);
	if (raw == MAP_FAILED || !buf)
		return 1;
	char *mem = (char *)(((uintptr_t)raw + two_mb - 1) & ~(uintptr_t)(two_mb - 1));
	memset(buf, 0, N * ps);
	memset(mem, 0x5a, N * ps);
	volatile char sum = 0;
	for (int k = 0; k < K; k++) {
		struct hmm_dmirror_cmd cmd = {
			.addr = (unsigned long)mem, .ptr = (unsigned long)buf, .npages = N,
		};
		if (ioctl(fd, HMM_DMIRROR_MIGRATE_TO_DEV, &cmd) < 0 || cmd.cpages != N) {
			perror("HMM_DMIRROR_MIGRATE_TO_DEV");
			return 1;
		}
		for (int i = 0; i < N; i++)
			sum += mem[i * ps];
	}
	printf("pingpong: region %#lx pages %d iterations %d\n", (unsigned long)mem, N, K);
	return 0;
}
