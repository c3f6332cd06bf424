"""Run under torchrun with 2 processes: ``all_gather_cat`` and ``mean_over_rows`` on parts of
different sizes (8 and 7 rows, then 0 and 3) equal the one-process result on the whole; exits
non-zero otherwise."""

import torch

from fervid.runtime.dist import all_gather_cat, init_from_environment, mean_over_rows, rank

if __name__ == "__main__":
    init_from_environment()
    for sizes in ((8, 7), (0, 3)):
        whole = torch.arange(sum(sizes) * 3).view(-1, 3)
        mine = torch.split(whole, sizes)[rank()]
        assert torch.equal(all_gather_cat(mine), whole), sizes
        assert torch.allclose(mean_over_rows(mine.double()), whole.double().mean(dim=0)), sizes
        assert torch.allclose(mean_over_rows(mine[:, 0].double()), whole[:, 0].double().mean())
