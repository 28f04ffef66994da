/* report.c — `retinac report`: find what each input holds, draw the figures into a temp folder,
 * write index.html, and rename the folder into place (semantics in report.h).
 *
 * Invariants: inputs are read completely before anything is drawn, so a corrupt input fails
 * the report before a file is written; the page lists every figure and every analysis that is
 * missing; the temp folder is flat (figures and index.html) so removing it is one readdir.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "errbuf.h"
#include "fsutil.h"
#include "plot.h"
#include "report.h"
#include "report_int.h"

#define MAX_INPUTS 16

typedef struct {
    FILE *html, *miss;
    char *html_buf, *miss_buf;
    size_t html_len, miss_len;
    int figures, missing;
} page;

static void esc(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else if (*s == '"') fputs("&quot;", f);
        else fputc(*s, f);
    }
}

/* A figure on the page: the PNG, linking to its SVG, and a caption (HTML-escaped). */
static void add_figure(page *pg, const char *name, int width, const char *alt, const char *caption)
{
    fprintf(pg->html, "<figure><a href=\"%s.svg\"><img src=\"%s.png\" width=\"%d\" alt=\"", name, name, width);
    esc(pg->html, alt);
    fputs("\"></a><figcaption>", pg->html);
    esc(pg->html, caption);
    fputs("</figcaption></figure>\n", pg->html);
    pg->figures++;
}

static void add_missing(page *pg, const char *what, const char *run, const char *how)
{
    fprintf(pg->miss, "%s: %s: %s\n", run, what, how);
    fputs("<li><b>", pg->html);
    esc(pg->html, what);
    fputs("</b> (", pg->html);
    esc(pg->html, run);
    fputs("): ", pg->html);
    esc(pg->html, how);
    fputs("</li>\n", pg->html);
    pg->missing++;
}

/* [A-Za-z0-9._-] only, for figure file names. */
static void safe_name(char *dst, size_t n, const char *prefix, int k, const char *label)
{
    int w = snprintf(dst, n, "%s-%d-", prefix, k);
    for (const char *s = label; *s && w + 1 < (int)n; s++, w++)
        dst[w] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                  *s == '.' || *s == '_' || *s == '-') ? *s : '_';
    dst[w < (int)n ? w : (int)n - 1] = 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void base_name(char *dst, size_t n, const char *path)
{
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", path);
    size_t l = strlen(tmp);
    while (l > 1 && tmp[l - 1] == '/') tmp[--l] = 0;
    const char *b = strrchr(tmp, '/');
    snprintf(dst, n, "%.63s", b ? b + 1 : tmp);   /* REP_NAME */
}

/* Read what a run (or search) folder holds. Returns 0, or -1 (err) for a corrupt file or a
 * folder with nothing of retinac's in it. */
static int read_run(const char *dir, const char *data, rep_run *r, char *err, size_t errlen)
{
    char p[1200], intr[1200];
    int rc;
    snprintf(r->path, sizeof r->path, "%s", dir);
    base_name(r->name, sizeof r->name, dir);
    snprintf(p, sizeof p, "%s/log.csv", dir);
    if ((rc = rep_read_log(p, &r->log, err, errlen)) < 0) return -1;
    r->has_log = rc == 0;
    snprintf(p, sizeof p, "%s/metrics.json", dir);
    if ((rc = rep_read_metrics(p, &r->metrics, err, errlen)) < 0) return -1;
    r->has_metrics = rc == 0;
    snprintf(p, sizeof p, "%s/rf.h5", dir);
    if ((rc = rep_read_rf(p, &r->rf, err, errlen)) < 0) return -1;
    r->has_rf = rc == 0;
    snprintf(p, sizeof p, "%s/search.csv", dir);
    if ((rc = rep_read_search(p, &r->search, err, errlen)) < 0) return -1;
    r->has_search = rc == 0;
    snprintf(intr, sizeof intr, "%s/intr.h5", dir);
    if (!r->has_log && !r->has_metrics && !r->has_rf && !rep_is_file(intr) && !r->has_search)
        return rc_errf(err, errlen, "%s: no log.csv, metrics.json, rf.h5, intr.h5 or search.csv: "
                       "not a retinac run or search folder", dir);
    /* best.h5, loaded once: the interneuron maps' layer shapes and the predictions */
    rc_checkpoint ck, *pck = NULL;
    snprintf(p, sizeof p, "%s/best.h5", dir);
    if (!r->has_search && rep_is_file(p)) {
        if (rc_ckpt_load(p, &ck, err, errlen) != 0) return -1;
        pck = &ck;
    }
    rc = rep_read_intr(intr, pck, &r->intr, err, errlen);
    r->has_intr = rc == 0;
    if (rc >= 0 && !r->has_search) {
        rc = rep_read_traces(pck, data, &r->traces, r->traces_note, sizeof r->traces_note, err, errlen);
        r->has_traces = rc == 0;
    }
    if (pck) rc_ckpt_free(pck);
    return rc < 0 ? -1 : 0;
}

static void run_free(rep_run *r)
{
    rep_log_free(&r->log);
    rep_metrics_free(&r->metrics);
    rep_rf_free(&r->rf);
    rep_intr_free(&r->intr);
    rep_search_free(&r->search);
    rep_traces_free(&r->traces);
}

/* Remove a flat folder (regular files only) and the folder. */
static void remove_flat(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        char p[1400];
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

/* 1 if dir holds index.html and only regular files: a report that may be replaced. */
static int is_report_folder(const char *dir)
{
    char p[1400];
    snprintf(p, sizeof p, "%s/index.html", dir);
    if (!rep_is_file(p)) return 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int ok = 1;
    while (ok && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        ok = rep_is_file(p);
    }
    closedir(d);
    return ok;
}

static const char page_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<title>retinac report</title>\n<style>\n"
    "body { font-family: sans-serif; max-width: 1320px; margin: 1em auto; padding: 0 1em; color: #222; }\n"
    "figure { margin: 1em 0 2em 0; } img { max-width: 100%; height: auto; border: 1px solid #ddd; }\n"
    "figcaption { max-width: 60em; font-size: 0.95em; } .broken { color: #b2182b; font-weight: bold; }\n"
    "</style>\n</head>\n<body>\n<h1>retinac report</h1>\n";

/* Marks a figure that does not load and records the counts on <body> (read by the test that
 * opens the page in a headless browser). */
static const char page_tail[] =
    "<script>\n"
    "window.addEventListener('load', function () {\n"
    "  var ok = 0, imgs = document.images;\n"
    "  for (var i = 0; i < imgs.length; i++) {\n"
    "    if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; continue; }\n"
    "    var m = document.createElement('p'); m.className = 'broken';\n"
    "    m.textContent = 'figure missing: ' + imgs[i].getAttribute('src');\n"
    "    imgs[i].parentNode.parentNode.insertBefore(m, imgs[i].parentNode);\n"
    "  }\n"
    "  document.body.setAttribute('data-loaded', ok + '/' + imgs.length);\n"
    "});\n"
    "</script>\n</body>\n</html>\n";

static int draw_all(page *pg, const char *tmp, rep_run **runs, int nr, char **phen_paths,
                    rep_phen *phen, int np, char *err, size_t errlen)
{
    char name[160], cap[2048];
    int any_log = 0, any_metrics = 0;
    for (int i = 0; i < nr; i++) {
        any_log |= runs[i]->has_log && runs[i]->log.n > 0;
        any_metrics |= runs[i]->has_metrics && runs[i]->metrics.n_cells > 0;
    }
    if (any_log) {
        if (rep_fig_training(tmp, "training", runs, nr, err, errlen)) return -1;
        fputs("<h2>Training</h2>\n", pg->html);
        add_figure(pg, "training", 1000, "training curves",
                   "Per epoch: training and validation loss (the spec's loss, per sample and cell), "
                   "validation r (mean over cells) and learning rate; one colour per run.");
    }
    if (any_metrics) {
        if (rep_fig_cells(tmp, "cells", runs, nr, err, errlen)) return -1;
        int w = snprintf(cap, sizeof cap, "Test split, per cell: correlation r and FEVe of each model; "
                         "black bars: the split-half noise ceiling of r.");
        for (int i = 0; i < nr && w < (int)sizeof cap - 200; i++) {
            const rep_metrics *m = &runs[i]->metrics;
            if (!runs[i]->has_metrics || m->n_cells == 0) continue;
            w += snprintf(cap + w, sizeof cap - (size_t)w, " %s: mean r %.3f (%.2f of the ceiling %.3f), FEVe %.3f.",
                          runs[i]->name, m->mean_r, m->mean_r / m->mean_ceiling, m->mean_ceiling, m->mean_feve);
        }
        fputs("<h2>Test accuracy</h2>\n", pg->html);
        add_figure(pg, "cells", 1000, "per-cell test r and FEVe", cap);
    }
    int any_traces = 0;
    for (int i = 0; i < nr; i++) any_traces |= runs[i]->has_traces;
    if (any_traces) {
        if (rep_fig_pred(tmp, "predictions", runs, nr, err, errlen)) return -1;
        const rep_run *ref = NULL;
        for (int i = 0; i < nr && !ref; i++)
            if (runs[i]->has_traces) ref = runs[i];
        snprintf(cap, sizeof cap, "The first 5 s of the test split of %.900s: the recorded response "
                 "(trial average, black) and each model's prediction from its best.h5, per cell.",
                 ref->traces.data);
        add_figure(pg, "predictions", 1200, "predicted and recorded responses", cap);
    }
    int rf_head = 0;
    for (int i = 0; i < nr; i++) {
        const rep_rf *r = &runs[i]->rf;
        if (!runs[i]->has_rf || r->cells == 0) continue;
        safe_name(name, sizeof name, "rf", i + 1, runs[i]->name);
        if (rep_fig_rf(tmp, name, runs[i], err, errlen)) return -1;
        if (!rf_head++) fputs("<h2>Receptive fields</h2>\n", pg->html);
        snprintf(cap, sizeof cap, "%s: the %s STA of each cell on white noise (rank-1 spatial map, red: "
                 "brightening excites; temporal kernel below). Circle: the fitted centre and RMS radius.",
                 runs[i]->name, !strcmp(r->method, "grad") ? "gradient" : "reverse-correlation");
        add_figure(pg, name, 250 * (r->cells < 4 ? r->cells : 4) + 140, "receptive fields", cap);
    }
    for (int k = 0; k < np; k++) {
        safe_name(name, sizeof name, "phenomena", k + 1, "battery");
        if (rep_fig_phen(tmp, name, &phen[k], err, errlen)) return -1;
        if (k == 0) fputs("<h2>Phenomena</h2>\n", pg->html);
        snprintf(cap, sizeof cap, "%s: responses (mean over cells) to the stimuli of the 2016/2023 "
                 "papers' figures; black: the simulated retina (ground truth), colours: models. "
                 "Stimuli and summary numbers: docs/phenomena.md.", phen_paths[k]);
        add_figure(pg, name, 1300, "phenomena battery", cap);
    }
    int intr_head = 0;
    for (int i = 0; i < nr; i++) {
        if (!runs[i]->has_intr || runs[i]->intr.cells == 0) continue;
        safe_name(name, sizeof name, "interneurons", i + 1, runs[i]->name);
        if (rep_fig_intr(tmp, name, runs[i], err, errlen)) return -1;
        if (!intr_head++) fputs("<h2>Interneurons</h2>\n", pg->html);
        snprintf(cap, sizeof cap, "%s: for each recorded interneuron, the correlation of the best-matching "
                 "model unit in each layer (docs/interneurons.md).", runs[i]->name);
        add_figure(pg, name, 1000, "interneuron matches", cap);
        if (runs[i]->intr.maps) {
            safe_name(name, sizeof name, "interneuron-maps", i + 1, runs[i]->name);
            if (rep_fig_intr_maps(tmp, name, runs[i], err, errlen)) return -1;
            snprintf(cap, sizeof cap, "%s: for each recorded interneuron, the correlation of every unit "
                     "of the best unit's layer and channel with it (red positive, blue negative, each "
                     "map scaled to its largest |r|); circle: the best unit.", runs[i]->name);
            add_figure(pg, name, 1100, "interneuron correlation maps", cap);
        }
    }
    int s_head = 0;
    for (int i = 0; i < nr; i++) {
        if (!runs[i]->has_search || runs[i]->search.n == 0) continue;
        safe_name(name, sizeof name, "search", i + 1, runs[i]->name);
        if (rep_fig_search(tmp, name, runs[i], err, errlen)) return -1;
        if (!s_head++) fputs("<h2>Search</h2>\n", pg->html);
        snprintf(cap, sizeof cap, "%s: the best validation loss of each trial (%d) against each searched "
                 "setting; failed trials are left out.", runs[i]->name, runs[i]->search.n);
        add_figure(pg, name, 1000, "search", cap);
    }
    /* what is missing, and the command that makes it */
    fputs("<h2>Not in this report</h2>\n<ul>\n", pg->html);
    for (int i = 0; i < nr; i++) {
        const rep_run *r = runs[i];
        char how[1400];
        if (r->has_search) continue;
        if (!r->has_log) add_missing(pg, "training curves", r->path, "no log.csv (written by retinac train)");
        if (!r->has_metrics)
            add_missing(pg, "test accuracy", r->path, "no metrics.json (written by retinac train)");
        else if (r->metrics.n_cells == 0)
            add_missing(pg, "test accuracy", r->path, "metrics.json has no test block (the recording has no test split)");
        if (!r->has_rf) {
            snprintf(how, sizeof how, "no rf.h5: run retinac rf %.600s -o %.600s/rf.h5", r->path, r->path);
            add_missing(pg, "receptive fields", r->path, how);
        }
        if (!r->has_intr) {
            snprintf(how, sizeof how, "no intr.h5: run retinac interneurons %.600s BIPOLARS.h5 AMACRINES.h5 "
                     "-o %.600s/intr.h5", r->path, r->path);
            add_missing(pg, "interneurons", r->path, how);
        }
    }
    if (np == 0 && nr > 0)
        add_missing(pg, "phenomena", "all runs",
                    "no phenomena file: run retinac phenomena RUN... -o FILE.h5 and pass FILE.h5 (or put "
                    "it in a run folder as phenomena.h5)");
    const rep_run *ref = NULL;
    for (int i = 0; i < nr && !ref; i++)
        if (runs[i]->has_traces) ref = runs[i];
    for (int i = 0; i < nr; i++) {
        const rep_run *r = runs[i];
        if (r->has_search) continue;
        if (!r->has_traces)
            add_missing(pg, "predicted vs recorded responses", r->path, r->traces_note);
        else if (ref && strcmp(ref->traces.data, r->traces.data))
            add_missing(pg, "predicted vs recorded responses", r->path,
                        "trained on another recording than the first run: give it its own report");
    }
    fputs("</ul>\n", pg->html);
    return 0;
}

int rc_report_write(const rc_report_opts *o, rc_report_result *res, char *err, size_t errlen)
{
    memset(res, 0, sizeof *res);
    if (!o->out || !*o->out) return rc_errf(err, errlen, "no output folder (-o)");
    if (o->n_inputs <= 0) return rc_errf(err, errlen, "no inputs: give run folders, search folders or phenomena files");
    if (o->n_inputs > MAX_INPUTS) return rc_errf(err, errlen, "at most %d inputs", MAX_INPUTS);
    if (rc_plot_available(err, errlen) != 0) return -1;
    for (int i = 0; i < o->n_inputs; i++)
        if (rc_path_same_file(o->out, o->inputs[i]))
            return rc_errf(err, errlen, "%s: the report folder is also an input", o->out);
    if (is_dir(o->out) && !is_report_folder(o->out))
        return rc_errf(err, errlen, "%s: exists and is not a report folder (no index.html, or "
                       "holds more than files): choose another -o", o->out);
    if (!is_dir(o->out) && access(o->out, F_OK) == 0)
        return rc_errf(err, errlen, "%s: exists and is not a folder", o->out);

    rep_run runs_store[MAX_INPUTS];
    rep_run *runs[MAX_INPUTS];
    rep_phen phen[MAX_INPUTS + MAX_INPUTS];
    char *phen_paths[MAX_INPUTS + MAX_INPUTS];
    char phen_store[MAX_INPUTS][1100];
    memset(runs_store, 0, sizeof runs_store);
    memset(phen, 0, sizeof phen);
    int nr = 0, np = 0, rc = -1;
    page pg = {0};
    char tmp[1200] = "";

    for (int i = 0; i < o->n_inputs; i++) {
        const char *in = o->inputs[i];
        if (is_dir(in)) {
            runs[nr] = &runs_store[nr];
            if (read_run(in, o->data, runs[nr], err, errlen) != 0) { nr++; goto out; }
            nr++;
            snprintf(phen_store[i], sizeof phen_store[i], "%s/phenomena.h5", in);
            if (rep_is_file(phen_store[i])) {
                if (rep_read_phen(phen_store[i], &phen[np], err, errlen) != 0) goto out;
                phen_paths[np++] = phen_store[i];
            }
        } else if (rep_is_file(in)) {
            if (!rep_is_phenomena(in)) {
                rc_errf(err, errlen, "%s: a file, but not a `retinac phenomena -o` output: give run "
                        "folders (they hold log.csv, metrics.json, rf.h5, intr.h5) or phenomena files", in);
                goto out;
            }
            if (rep_read_phen(in, &phen[np], err, errlen) != 0) goto out;
            phen_paths[np++] = (char *)in;
        } else {
            rc_errf(err, errlen, "%s: no such file or folder", in);
            goto out;
        }
    }

    /* the temp folder beside the target */
    char parent[1100];
    snprintf(parent, sizeof parent, "%s", o->out);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent) {
        *slash = 0;
        if (rc_make_dirs(parent, err, errlen) != 0) goto out;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", o->out, (long)getpid());
    remove_flat(tmp);
    if (mkdir(tmp, 0777) != 0) {
        rc_errf(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
        tmp[0] = 0;
        goto out;
    }
    pg.html = open_memstream(&pg.html_buf, &pg.html_len);
    pg.miss = open_memstream(&pg.miss_buf, &pg.miss_len);
    if (!pg.html || !pg.miss) { rc_errf(err, errlen, "out of memory"); goto out; }
    fputs(page_head, pg.html);
    fputs("<p>Inputs:", pg.html);
    for (int i = 0; i < o->n_inputs; i++) {
        fputs(i ? ", <code>" : " <code>", pg.html);
        esc(pg.html, o->inputs[i]);
        fputs("</code>", pg.html);
    }
    fputs(". Written by retinac ", pg.html);
    esc(pg.html, o->version ? o->version : "");
    fputs(". Each figure links to its SVG.</p>\n", pg.html);
    if (draw_all(&pg, tmp, runs, nr, phen_paths, phen, np, err, errlen) != 0) goto out;
    fputs(page_tail, pg.html);
    if (fclose(pg.html) != 0) { pg.html = NULL; rc_errf(err, errlen, "out of memory"); goto out; }
    pg.html = NULL;
    char index[1300];
    snprintf(index, sizeof index, "%s/index.html", tmp);
    if (rc_write_file_atomic(index, pg.html_buf, pg.html_len, err, errlen) != 0) goto out;

    /* into place: the old report (if any) aside, the new one in, the old one removed */
    char old[1200];
    snprintf(old, sizeof old, "%s.old.%ld", o->out, (long)getpid());
    int had_old = is_dir(o->out);
    if (had_old && rename(o->out, old) != 0) {
        rc_errf(err, errlen, "%s: cannot move the previous report aside: %s", o->out, strerror(errno));
        goto out;
    }
    if (rename(tmp, o->out) != 0) {
        rc_errf(err, errlen, "%s: cannot rename %s into place: %s", o->out, tmp, strerror(errno));
        if (had_old) rename(old, o->out);
        goto out;
    }
    tmp[0] = 0;
    if (had_old) remove_flat(old);
    res->figures = pg.figures;
    res->missing = pg.missing;
    rc = 0;
out:
    if (pg.html) fclose(pg.html);
    if (pg.miss) fclose(pg.miss);
    free(pg.html_buf);
    if (rc == 0) res->missing_text = pg.miss_buf;
    else free(pg.miss_buf);
    if (tmp[0]) remove_flat(tmp);
    for (int i = 0; i < nr; i++) run_free(runs[i]);
    for (int i = 0; i < np; i++) rep_phen_free(&phen[i]);
    return rc;
}

void rc_report_result_free(rc_report_result *r)
{
    free(r->missing_text);
    memset(r, 0, sizeof *r);
}
