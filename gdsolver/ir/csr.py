"""A minimal CSR matrix (indptr int64, indices int32, data float64), numpy only.

scipy.sparse would do, but the IR must depend on numpy alone, and we only need
construction, stacking, mat-vec and per-row reductions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsolver.errors import InstanceError


@dataclass(frozen=True)
class Csr:
    indptr: np.ndarray  # int64 (m + 1,)
    indices: np.ndarray  # int32 (nnz,)
    data: np.ndarray  # float64 (nnz,)
    ncols: int

    @property
    def nrows(self) -> int:
        return len(self.indptr) - 1

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @staticmethod
    def empty(ncols: int) -> "Csr":
        return Csr(np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64), int(ncols))

    @staticmethod
    def from_coo(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, nrows: int, ncols: int) -> "Csr":
        """Build from triplets. Triplets already sorted by row (the usual case for the
        formulations) skip the sort. Duplicates are kept (solvers sum or reject them;
        the formulations never produce any)."""
        rows = np.asarray(rows, dtype=np.int64).ravel()
        cols = np.asarray(cols, dtype=np.int64).ravel()
        vals = np.asarray(vals, dtype=np.float64).ravel()
        if not (len(rows) == len(cols) == len(vals)):
            raise InstanceError("rows, cols and vals must have the same length")
        if len(rows) and np.any(rows[1:] < rows[:-1]):
            order = np.argsort(rows, kind="stable")
            rows, cols, vals = rows[order], cols[order], vals[order]
        counts = np.bincount(rows, minlength=nrows) if len(rows) else np.zeros(nrows, np.int64)
        indptr = np.zeros(nrows + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        return Csr(indptr, cols.astype(np.int32), vals, int(ncols))

    @staticmethod
    def stack_coo(groups: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]], ncols: int) -> "Csr":
        """vstack([from_coo(rows, cols, vals, nrows, ncols) for each group]), the same arrays, written
        group by group into the final ones (no per-group matrices and no second copy: a builder's
        peak memory is its triplets plus the result; one group keeps its vals array, as from_coo)."""
        if len(groups) == 1:
            rows, cols, vals, m = groups[0]
            return Csr.from_coo(rows, cols, vals, m, ncols)
        if not groups:
            return Csr.empty(ncols)
        sizes = []
        for rows, cols, vals, _ in groups:
            if not (np.size(rows) == np.size(cols) == np.size(vals)):
                raise InstanceError("rows, cols and vals must have the same length")
            sizes.append(int(np.size(vals)))
        total, nrows = sum(sizes), sum(m for *_, m in groups)
        indptr = np.zeros(nrows + 1, np.int64)
        indices, data = np.empty(total, np.int32), np.empty(total, np.float64)
        pos = roff = 0
        for (rows, cols, vals, m), size in zip(groups, sizes):
            rows = np.asarray(rows, dtype=np.int64).ravel()
            cols, vals = np.asarray(cols).ravel(), np.asarray(vals, dtype=np.float64).ravel()
            if size and np.any(rows[1:] < rows[:-1]):
                order = np.argsort(rows, kind="stable")
                rows, cols, vals = rows[order], cols[order], vals[order]
            counts = np.bincount(rows, minlength=m) if size else np.zeros(m, np.int64)
            np.cumsum(counts, out=indptr[roff + 1:roff + m + 1])
            indptr[roff + 1:roff + m + 1] += pos
            indices[pos:pos + size] = np.asarray(cols, dtype=np.int64)  # as from_coo: int64, then int32
            data[pos:pos + size] = vals
            pos, roff = pos + size, roff + m
        return Csr(indptr, indices, data, int(ncols))

    def row_ids(self) -> np.ndarray:
        """Row index of every stored entry (int64, nnz; computed once per matrix and shared:
        do not write to it)."""
        cached = self.__dict__.get("_row_ids")
        if cached is None:  # presolve asks for it dozens of times on a million entries
            cached = np.repeat(np.arange(self.nrows, dtype=np.int64), np.diff(self.indptr))
            cached.flags.writeable = False
            object.__setattr__(self, "_row_ids", cached)
        return cached

    def matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.row_sum(self.data * x[self.indices])

    def row_sum(self, per_entry: np.ndarray) -> np.ndarray:
        """Sum a per-entry array within each row."""
        out = np.zeros(self.nrows)
        if self.nnz == 0:
            return out
        # reduceat over the row starts (no per-entry row ids); empty rows would repeat the next entry
        starts = self.indptr[:-1]
        nonempty = starts < self.indptr[1:]
        out[nonempty] = np.add.reduceat(np.asarray(per_entry, dtype=np.float64), starts[nonempty])
        return out

    def row_max_abs(self) -> np.ndarray:
        out = np.zeros(self.nrows)
        if self.nnz:
            np.maximum.at(out, self.row_ids(), np.abs(self.data))
        return out

    @staticmethod
    def vstack(parts: list["Csr"], ncols: int) -> "Csr":
        if not parts:
            return Csr.empty(ncols)
        if len(parts) == 1 and parts[0].ncols == ncols:  # one group (a head's indicators): no copy
            return parts[0]
        offsets = np.cumsum([0] + [p.nnz for p in parts[:-1]])
        indptr = np.concatenate([np.zeros(1, np.int64)] + [p.indptr[1:] + off for p, off in zip(parts, offsets)])
        indices = np.concatenate([p.indices for p in parts]).astype(np.int32, copy=False)
        data = np.concatenate([p.data for p in parts]).astype(np.float64, copy=False)
        return Csr(indptr, indices, data, int(ncols))

    def take_rows(self, rows: np.ndarray) -> "Csr":
        """The sub-matrix of the given rows, in the given order (vectorised gather)."""
        rows = np.asarray(rows, dtype=np.int64)
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        lengths = ends - starts
        indptr = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        # position of each output entry in the source arrays
        src = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1])
        return Csr(indptr, self.indices[src], self.data[src], self.ncols)

    def with_extra_column_entries(self, cols: np.ndarray, vals: np.ndarray) -> "Csr":
        """Append one entry (cols[i], vals[i]) at the end of every row i (vectorised)."""
        m = self.nrows
        lengths = np.diff(self.indptr) + 1
        indptr = np.zeros(m + 1, np.int64)
        np.cumsum(lengths, out=indptr[1:])
        indices = np.empty(indptr[-1], np.int32)
        data = np.empty(indptr[-1], np.float64)
        last = indptr[1:] - 1
        mask = np.ones(indptr[-1], bool)
        mask[last] = False
        indices[mask], data[mask] = self.indices, self.data
        indices[last], data[last] = cols, vals
        return Csr(indptr, indices, data, self.ncols)

    def sum_duplicates(self) -> "Csr":
        """Same matrix with repeated (row, column) entries summed into one and exact zeros
        dropped (solvers reject duplicates; HiGHS also rejects explicit zeros), rows sorted by column."""
        rows = self.row_ids()
        order = np.lexsort((self.indices, rows))
        r, c = rows[order], self.indices[order].astype(np.int64)
        first = np.ones(len(r), bool)
        first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
        group = np.cumsum(first) - 1
        data = np.bincount(group, weights=self.data[order], minlength=int(first.sum()))
        r, c = r[first], c[first]
        keep = data != 0
        return Csr.from_coo(r[keep], c[keep], data[keep], self.nrows, self.ncols)
