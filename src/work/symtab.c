/* Names code addresses from an ELF object's full symbol table (.symtab),
 * for the watchdog: dladdr() knows only the dynamic symbols, so a static
 * function, or any function of an executable linked without -rdynamic,
 * would go unnamed (or be named after whatever exported symbol precedes
 * it). The objects are mapped read-only on the watchdog thread and kept
 * until the watchdog stops: no allocation, nothing on the loop thread.
 * Every offset read from a file is checked against its size. */
#include "work/work_int.h"

#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MO__ELF_DATA ELFDATA2LSB
#else
#define MO__ELF_DATA ELFDATA2MSB
#endif
#if UINTPTR_MAX > 0xffffffffu
#define MO__ELF_CLASS ELFCLASS64
#define MO__ST_TYPE   ELF64_ST_TYPE
#else
#define MO__ELF_CLASS ELFCLASS32
#define MO__ST_TYPE   ELF32_ST_TYPE
#endif

/* The object that holds an address: its file and load base. */
struct found {
    uintptr_t addr;
    uintptr_t base;
    const char *name; /* "" for the main program */
    bool hit;
};

static int find_object(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct found *f = arg;
    for (ElfW(Half) i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (ph->p_type != PT_LOAD || f->addr < lo || f->addr - lo >= ph->p_memsz) continue;
        f->base = info->dlpi_addr;
        f->name = info->dlpi_name;
        f->hit = true;
        return 1;
    }
    return 0;
}

static bool in_file(const struct mo__symobj *o, uint64_t off, uint64_t len)
{
    return off <= o->size && len <= o->size - off;
}

/* The object's mapping, from the cache or mapped now; NULL if the file
 * cannot be read or the cache is full. */
static const struct mo__symobj *object_map(struct mo__symtab *t, const char *path)
{
    for (unsigned i = 0; i < t->n; i++)
        if (strcmp(t->objs[i].path, path) == 0) return &t->objs[i];
    size_t plen = strlen(path);
    if (t->n == MO__SYMTAB_OBJECTS || plen >= sizeof(t->objs[0].path)) return NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    void *map = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size > 0)
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (map == MAP_FAILED) return NULL;
    struct mo__symobj *o = &t->objs[t->n++];
    memcpy(o->path, path, plen + 1);
    o->map = map;
    o->size = (size_t)st.st_size;
    return o;
}

/* The object's section headers, if it is an ELF file of this machine's
 * kind whose headers lie within it. */
static const ElfW(Shdr) * sections(const struct mo__symobj *o, unsigned *np)
{
    const ElfW(Ehdr) *eh = (const void *)o->map;
    if (!in_file(o, 0, sizeof(*eh)) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
        eh->e_ident[EI_CLASS] != MO__ELF_CLASS || eh->e_ident[EI_DATA] != MO__ELF_DATA ||
        eh->e_shentsize != sizeof(ElfW(Shdr)) ||
        !in_file(o, eh->e_shoff, (uint64_t)eh->e_shnum * sizeof(ElfW(Shdr))))
        return NULL;
    *np = eh->e_shnum;
    return (const void *)(o->map + eh->e_shoff);
}

/* The best function symbol of one symbol table for `rel` (an address
 * relative to the load base): the one that contains it, starting last. */
static const char *search(const struct mo__symobj *o, const ElfW(Shdr) * sym,
                          const ElfW(Shdr) * str, uintptr_t rel, uintptr_t *offp)
{
    if (!in_file(o, sym->sh_offset, sym->sh_size) || !in_file(o, str->sh_offset, str->sh_size))
        return NULL;
    const ElfW(Sym) *s = (const void *)(o->map + sym->sh_offset);
    size_t n = sym->sh_size / sizeof(*s);
    const char *names = (const char *)o->map + str->sh_offset;
    const ElfW(Sym) *best = NULL;
    for (size_t i = 0; i < n; i++) {
        if (MO__ST_TYPE(s[i].st_info) != STT_FUNC || s[i].st_shndx == SHN_UNDEF) continue;
        if (rel < s[i].st_value || rel - s[i].st_value >= (s[i].st_size ? s[i].st_size : 1))
            continue;
        if (s[i].st_name >= str->sh_size) continue;
        if (!best || s[i].st_value > best->st_value) best = &s[i];
    }
    if (!best || !memchr(names + best->st_name, '\0', str->sh_size - best->st_name)) return NULL;
    *offp = rel - best->st_value;
    return names + best->st_name;
}

const char *mo__symtab_lookup(struct mo__symtab *t, uintptr_t addr, uintptr_t *offp)
{
    struct found f = {.addr = addr};
    dl_iterate_phdr(find_object, &f);
    if (!f.hit) return NULL;
    const struct mo__symobj *o = object_map(t, f.name[0] ? f.name : "/proc/self/exe");
    unsigned n = 0;
    const ElfW(Shdr) *sh = o ? sections(o, &n) : NULL;
    for (unsigned i = 0; sh && i < n; i++) {
        if (sh[i].sh_type != SHT_SYMTAB || sh[i].sh_link >= n) continue;
        const char *name = search(o, &sh[i], &sh[sh[i].sh_link], addr - f.base, offp);
        if (name) return name;
    }
    return NULL;
}

void mo__symtab_free(struct mo__symtab *t)
{
    for (unsigned i = 0; i < t->n; i++) munmap((void *)t->objs[i].map, t->objs[i].size);
    t->n = 0;
}
