/* fsbench: the guest side of benches/mount.rs, built static into the guest image by build-image.
 * Every figure is measured inside the guest with CLOCK_MONOTONIC, so the command server's round
 * trip is not part of it.
 *   fsbench walk DIR          readdir every directory and lstat every entry, as a polling
 *                             watcher does; prints "entries=N ms=T p50_us=A p99_us=B" (the
 *                             lstat latencies of this walk)
 *   fsbench read FILE         read FILE to its end; prints "bytes=N ms=T"
 *   fsbench fresh FILE SIZE MAXMS
 *                             lstat FILE every 5 ms until its size is SIZE; prints "ms=T", or
 *                             "ms=timeout" after MAXMS
 *   fsbench mktree DIR DIRS FILES
 *                             DIRS directories of FILES small files each (the tmpfs reference)
 *   fsbench inotify PATH MS   an in-VM watcher (as nodemon's or webpack's): inotify on PATH
 *                             for MS ms, a line "event mask=0x… name=…" per event, flushed
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double *lat;
static size_t nlat, caplat;

static void walk(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) { perror(dir); exit(2); }
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        double t0 = now_ms();
        if (lstat(path, &st) != 0) { perror(path); exit(2); }
        if (nlat == caplat) {
            caplat = caplat ? caplat * 2 : 65536;
            lat = realloc(lat, caplat * sizeof *lat);
        }
        lat[nlat++] = now_ms() - t0;
        if (S_ISDIR(st.st_mode)) walk(path);
    }
    closedir(d);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "walk")) {
        double t0 = now_ms();
        walk(argv[2]);
        double ms = now_ms() - t0;
        qsort(lat, nlat, sizeof *lat, cmp);
        printf("entries=%zu ms=%.1f p50_us=%.1f p99_us=%.1f\n", nlat, ms,
               nlat ? lat[nlat / 2] * 1e3 : 0, nlat ? lat[nlat * 99 / 100] * 1e3 : 0);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "read")) {
        static char buf[65536];
        double t0 = now_ms();
        int fd = open(argv[2], O_RDONLY);
        if (fd < 0) { perror(argv[2]); return 2; }
        long total = 0;
        ssize_t n;
        while ((n = read(fd, buf, sizeof buf)) > 0) total += n;
        close(fd);
        printf("bytes=%ld ms=%.1f\n", total, now_ms() - t0);
        return 0;
    }
    if (argc == 5 && !strcmp(argv[1], "fresh")) {
        long want = atol(argv[3]);
        double max = atof(argv[4]), t0 = now_ms();
        for (;;) {
            struct stat st;
            if (lstat(argv[2], &st) == 0 && st.st_size == want) {
                printf("ms=%.1f\n", now_ms() - t0);
                return 0;
            }
            if (now_ms() - t0 > max) { printf("ms=timeout\n"); return 0; }
            usleep(5000);
        }
    }
    if (argc == 5 && !strcmp(argv[1], "mktree")) {
        int dirs = atoi(argv[3]), files = atoi(argv[4]);
        char path[4096];
        for (int d = 0; d < dirs; d++) {
            snprintf(path, sizeof path, "%s/d%03d", argv[2], d);
            if (mkdir(path, 0755) != 0) { perror(path); return 2; }
            for (int f = 0; f < files; f++) {
                snprintf(path, sizeof path, "%s/d%03d/f%03d.rb", argv[2], d, f);
                int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
                if (fd < 0 || write(fd, "x\n", 2) != 2) { perror(path); return 2; }
                close(fd);
            }
        }
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "inotify")) {
        int fd = inotify_init1(IN_NONBLOCK);
        if (fd < 0 || inotify_add_watch(fd, argv[2], IN_ALL_EVENTS) < 0) { perror(argv[2]); return 2; }
        printf("watching %s\n", argv[2]);
        fflush(stdout);
        double end = now_ms() + atof(argv[3]);
        char buf[65536] __attribute__((aligned(8)));
        for (double left; (left = end - now_ms()) > 0;) {
            struct pollfd p = {fd, POLLIN, 0};
            if (poll(&p, 1, (int)left) <= 0) continue;
            ssize_t n = read(fd, buf, sizeof buf);
            for (char *at = buf; n > 0 && at < buf + n;) {
                struct inotify_event *e = (struct inotify_event *)at;
                printf("event mask=0x%x name=%s\n", e->mask, e->len ? e->name : "");
                at += sizeof *e + e->len;
            }
            fflush(stdout);
        }
        return 0;
    }
    fprintf(stderr, "usage: fsbench walk DIR | read FILE | fresh FILE SIZE MAXMS | mktree DIR DIRS FILES | inotify PATH MS\n");
    return 64;
}
