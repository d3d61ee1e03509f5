# The R side of hangar-runner's "r" runtime (see README.md, "Interpreter runtimes").
#
# Not a script to run by hand: it is the first code block the runner sends to a new R. The
# runner starts R's own binary with `--vanilla --no-echo -e BOOTSTRAP` (BOOTSTRAP is in
# runtime_interp.c) and two extra pipes, the same protocol as python_driver.py:
#
#   fd 3, runner -> R: code blocks, each a 4-byte big-endian length and UTF-8 source. The
#        first block is this file; BOOTSTRAP evaluates it in a child of the base environment
#        and hands it `ctl`, its open connection to fd 3. Every later block is one query.
#   fd 4, R -> runner: events, each a type byte, a 4-byte big-endian length and a UTF-8
#        payload: 'R' ready, 'W' waiting for input (the prompt), 'M' media (a JSON object
#        {"type": MIME, "data": BASE64}), 'D' done ("ok", "error", or a decimal status).
#
# Queries run in the global environment, which stays as empty as a new R's: the driver's own
# names live in its environment, and readline(), quit() and q() are replaced through an
# attached environment ("hangar:runtime") rather than in the global one. As Rscript would: a
# visible value is printed, an error prints "Error ..." to stderr and gives status 1, and
# quit(status = n) gives n (the interpreter and its state stay). Plots drawn on the default
# device come back as PNG media when the query ends.
#
# Interrupts (SIGINT, 'X') are allowed only while a query's code runs: the loop itself runs
# with interrupts suspended, so that reading a block or writing an event is never cut. An
# interrupt that lands between queries stays pending in R and stops the next query at its
# first instruction (R offers no way to drop it).
#
# The comment lines of this file are not embedded (Tools/scripts/embed-runner-driver.sh).
ev <- file("/dev/fd/4", "wb")
inp <- file("stdin", "r")

be32 <- function(n) as.raw(c(n %/% 16777216, (n %/% 65536) %% 256, (n %/% 256) %% 256, n %% 256))

emit <- function(kind, text, limit = 1048576) {
    data <- charToRaw(enc2utf8(paste(text, collapse = "")))
    if (length(data) > limit) data <- data[seq_len(limit)]
    writeBin(c(charToRaw(kind), be32(length(data)), data), ev)
    flush(ev)
}

# All output written so far reaches the runner before an event (README: "Output before
# events").
flush_output <- function() {
    try(flush(stdout()), silent = TRUE)
    try(flush(stderr()), silent = TRUE)
}

readn <- function(n) {
    if (n == 0) return(raw(0))
    data <- readBin(ctl, "raw", n)
    if (length(data) < n) NULL else data
}

b64_alphabet <- strsplit("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", "")[[1]]
base64 <- function(bytes) {
    pad <- (3 - length(bytes) %% 3) %% 3
    v <- matrix(as.integer(c(bytes, as.raw(rep(0, pad)))), nrow = 3)
    x <- v[1, ] * 65536 + v[2, ] * 256 + v[3, ]
    s <- b64_alphabet[as.vector(rbind(x %/% 262144, (x %/% 4096) %% 64, (x %/% 64) %% 64, x %% 64)) + 1]
    if (pad > 0) s[seq(length(s) - pad + 1, length(s))] <- "="
    paste(s, collapse = "")
}

# Plots: the default device writes numbered PNG files here; each query's files are sent and
# removed when it ends.
plots <- tempfile("hangar-plots-")
dir.create(plots)
options(device = function(...) grDevices::png(file.path(plots, "plot-%03d.png"), width = 720, height = 480))

send_plots <- function() {
    while (grDevices::dev.cur() > 1) grDevices::dev.off()
    for (f in sort(list.files(plots, full.names = TRUE))) {
        bytes <- readBin(f, "raw", file.info(f)$size)
        unlink(f)
        if (length(bytes) > 0) {
            emit("M", paste0("{\"type\": \"image/png\", \"data\": \"", base64(bytes), "\"}"), limit = 8388608)
        }
    }
}

quit_request <- function(status) structure(class = c("hangarQuit", "condition"), list(message = "quit", call = NULL, status = status))

runtime <- new.env()
# readline(): the prompt travels in 'W'; the answer is the line the runner writes to stdin.
runtime$readline <- function(prompt = "") {
    flush_output()
    emit("W", prompt)
    line <- readLines(inp, n = 1L, warn = FALSE)
    if (length(line) == 0) "" else line
}
runtime$quit <- function(save = "default", status = 0, runLast = TRUE) stop(quit_request(status))
runtime$q <- runtime$quit
attach(runtime, name = "hangar:runtime", warn.conflicts = FALSE)

show_error <- function(e) {
    call <- conditionCall(e)
    # stop() at a query's top level: its call is the driver's own eval, which Rscript would not show.
    if (identical(call, quote(eval(expr, globalenv())))) call <- NULL
    head <- if (is.null(call)) "Error: " else paste0("Error in ", paste(deparse(call, nlines = 1L), collapse = ""), " : ")
    cat(head, conditionMessage(e), "\n", sep = "", file = stderr())
}

# One query: "ok", "error" or the status quit() asked for. Each top-level expression is
# evaluated and, when visible, printed, as Rscript does; the first error ends the query.
run <- function(src) {
    exprs <- tryCatch(parse(text = src, keep.source = FALSE, encoding = "UTF-8"), error = function(e) e)
    if (inherits(exprs, "error")) {
        cat("Error: ", conditionMessage(exprs), "\n", sep = "", file = stderr())
        return("error")
    }
    for (expr in exprs) {
        outcome <- tryCatch(
            withCallingHandlers(
                allowInterrupts({
                    shown <- withVisible(eval(expr, globalenv()))
                    if (shown$visible) print(shown$value)
                    NULL
                }),
                warning = function(w) {
                    cat("Warning message:\n", conditionMessage(w), "\n", sep = "", file = stderr())
                    invokeRestart("muffleWarning")
                }),
            hangarQuit = function(q) q,
            interrupt = function(i) structure(list(), class = "hangarInterrupt"),
            error = function(e) e)
        if (inherits(outcome, "hangarQuit")) {
            status <- suppressWarnings(as.integer(outcome$status))
            status <- if (is.na(status)) 1L else status %% 256L
            return(if (status == 0L) "ok" else as.character(status))
        }
        if (inherits(outcome, "hangarInterrupt")) {
            cat("Interrupted\n", file = stderr())
            return("error")
        }
        if (inherits(outcome, "error")) {
            show_error(outcome)
            return("error")
        }
    }
    "ok"
}

suspendInterrupts({
    emit("R", "")
    repeat {
        head <- readn(4)
        if (is.null(head)) break
        block <- readn(sum(as.integer(head) * c(16777216, 65536, 256, 1)))
        if (is.null(block)) break
        src <- rawToChar(block)
        Encoding(src) <- "UTF-8"
        status <- tryCatch(run(src), error = function(e) "error")
        tryCatch(send_plots(), error = function(e) cat("hangar: plots not sent:", conditionMessage(e), "\n", file = stderr()))
        flush_output()
        emit("D", status)
    }
})
flush_output()
quit(save = "no", status = 0)
