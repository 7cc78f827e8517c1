/* replay.c: the main() of a fuzz target built without libFuzzer (gcc, ASan + UBSan): it runs every
 * file of the directories or files named on its command line through LLVMFuzzerTestOneInput, each in a
 * buffer of its exact size so that ASan sees a read past its end. CI replays the corpus and the seeds
 * this way (fuzz/Makefile's replay target); the exit status is non-zero when a file could not be read
 * or none was given. A broken promise aborts, as under libFuzzer.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path)
{
    static uint8_t buf[1 << 20];
    FILE *f = fopen(path, "rb");

    if (f == NULL) {
        perror(path);
        return -1;
    }
    size_t n = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    uint8_t *data = malloc(n ? n : 1);
    if (data == NULL)
        return -1;
    memcpy(data, buf, n);
    LLVMFuzzerTestOneInput(data, n);
    free(data);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0, errors = 0;

    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            errors++;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            errors += replay_file(argv[i]) != 0;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[i], e->d_name);
            errors += replay_file(path) != 0;
            files++;
        }
        if (d != NULL)
            closedir(d);
    }
    printf("replayed %d files, %d unreadable\n", files, errors);
    return errors || files == 0;
}
