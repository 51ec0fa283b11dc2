from .structural_distill import (SamStructuralDistiller, sample_query_cells,
                                 self_similarity_rows, token_centres)

__all__ = [
    'SamStructuralDistiller', 'self_similarity_rows', 'token_centres', 'sample_query_cells'
]
